//! The AWS Bedrock dialect (Converse / ConverseStream).

pub mod eventstream;
pub mod sigv4;
