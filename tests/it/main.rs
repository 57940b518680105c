//! The one integration-test binary. Shared helpers live in `support/`; each capability has
//! its own module.

mod support;

mod http_layer;
