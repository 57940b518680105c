pub mod client;
pub mod gateway;
pub mod raw;
pub mod upstream;
