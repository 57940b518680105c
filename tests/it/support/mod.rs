pub mod client;
pub mod gateway;
pub mod upstream;
