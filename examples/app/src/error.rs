//! Why a request could not be read, and the status the app answers it with.

use std::io;

use crate::http::{MAX_BODY, MAX_HEAD};

/// A request that could not be read. Each says whether it gets a response
/// ([`RequestError::status`]): a broken request does, a client that went away does not.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// Reading from the client failed.
    #[error("reading the request: {0}")]
    Io(#[from] io::Error),
    /// The client closed the connection in the middle of a request.
    #[error("the connection closed in the middle of a request")]
    UnexpectedEof,
    /// The request line or a header is not HTTP/1.x, or there are over 100 headers.
    #[error("bad request head: {0}")]
    BadHead(httparse::Error),
    /// The head is over [`MAX_HEAD`] bytes.
    #[error("request head over {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// `Content-Length` is not one whole number.
    #[error("bad Content-Length")]
    BadContentLength,
    /// `Transfer-Encoding` does not end in `chunked`.
    #[error("Transfer-Encoding must end in chunked")]
    UnsupportedTransferEncoding,
    /// Both `Transfer-Encoding` and `Content-Length`: a request smuggling shape, refused.
    #[error("both Transfer-Encoding and Content-Length")]
    AmbiguousLength,
    /// The chunked body breaks the chunked grammar.
    #[error("bad chunked body: {0}")]
    BadChunk(&'static str),
    /// The body is over [`MAX_BODY`] bytes.
    #[error("request body over {MAX_BODY} bytes")]
    BodyTooLarge,
}

impl RequestError {
    /// The status to answer with, or `None` when the client is gone and nobody would read it.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Self::Io(_) | Self::UnexpectedEof => None,
            Self::BodyTooLarge => Some(413),
            Self::BadHead(_)
            | Self::HeadTooLarge
            | Self::BadContentLength
            | Self::UnsupportedTransferEncoding
            | Self::AmbiguousLength
            | Self::BadChunk(_) => Some(400),
        }
    }
}
