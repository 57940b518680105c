pub mod binary;
pub mod client;
pub mod gateway;
pub mod logs;
pub mod raw;
pub mod redis;
pub mod upstream;
