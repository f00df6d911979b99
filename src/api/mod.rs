//! The HTTP API (axum): routes, wire types, errors. It only translates between HTTP and the
//! engine; the engine never sees a request or formats JSON.

pub mod types;
