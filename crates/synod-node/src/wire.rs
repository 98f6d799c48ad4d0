//! Frames between peers: a 4-byte big-endian length, then JSON. Every claim a frame makes is
//! signed (offers, BFT messages, decision proofs) and checked against the peer list by the
//! receiver; the connection itself is not trusted (NODE-6).

use crate::content::{Content, Offer};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use synod_core::protocols::NodeId;
use synod_core::protocols::bft::{Payload, SignedMessage};

/// Largest frame read or written; a longer length prefix closes the connection.
pub const FRAME_BYTES_MAX: usize = 8 * 1024 * 1024;

/// A BFT message in JSON (the signature as hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMessage {
    /// Height.
    pub height: u64,
    /// Claimed sender.
    pub from: u16,
    /// Content.
    pub payload: Payload,
    /// ed25519 signature, 128 hex characters.
    pub signature: String,
}

impl From<&SignedMessage> for WireMessage {
    fn from(m: &SignedMessage) -> WireMessage {
        WireMessage {
            height: m.height,
            from: m.from.0,
            payload: m.payload.clone(),
            signature: synod_store::hex_encode(&m.signature),
        }
    }
}

impl WireMessage {
    /// The core's message, if the signature is 64 bytes of hex (whether it verifies is the
    /// core's check).
    pub fn to_signed(&self) -> Option<SignedMessage> {
        let signature = synod_store::hex_decode::<64>(&self.signature).ok()?;
        Some(SignedMessage {
            height: self.height,
            from: NodeId(self.from),
            payload: self.payload.clone(),
            signature,
        })
    }
}

/// What peers send each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frame {
    /// First frame on a connection: who says it is calling, in which instance (a hint for
    /// routing only: nothing is believed because of it).
    Hello {
        /// The caller's id.
        from: u16,
        /// The chain id, hex.
        chain: String,
    },
    /// A sign of life for the failure detector, with the height the sender is at and whether
    /// it has finished (unsigned: a lie about either only changes whom a peer helps catch up
    /// and when a finished peer stops lingering, never what anyone decides).
    Heartbeat {
        /// The sender's current height.
        height: u64,
        /// It has finished.
        done: bool,
    },
    /// A peer's signed interpretation for a reading height.
    Offer(Box<Offer>),
    /// A BFT message; a proposal carries the content its value is the digest of.
    Bft {
        /// The signed message.
        message: WireMessage,
        /// The proposed content (proposals only).
        content: Option<Box<Content>>,
    },
    /// A decided height, for a peer that is behind: the content and the quorum of precommits.
    Decided {
        /// The height.
        height: u64,
        /// What was decided.
        content: Box<Content>,
        /// The proposal and at least n − f precommits for its digest.
        proof: Vec<WireMessage>,
    },
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, frame: &Frame) -> io::Result<()> {
    let body = serde_json::to_vec(frame).map_err(io::Error::other)?;
    if body.len() > FRAME_BYTES_MAX {
        return Err(io::Error::other(format!(
            "frame of {} bytes is over the {FRAME_BYTES_MAX}-byte limit",
            body.len()
        )));
    }
    w.write_all(&(body.len() as u32).to_be_bytes())?;
    w.write_all(&body)?;
    w.flush()
}

/// Reads one frame; a frame over the limit or that does not parse is an error (the caller
/// closes the connection).
pub fn read_frame(r: &mut impl Read) -> io::Result<Frame> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes announced; the limit is {FRAME_BYTES_MAX}"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_lengths_are_refused() {
        let f = Frame::Hello {
            from: 3,
            chain: "ab".into(),
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &f).unwrap();
        assert_eq!(read_frame(&mut buf.as_slice()).unwrap(), f);
        let mut huge = (FRAME_BYTES_MAX as u32 + 1).to_be_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        let err = read_frame(&mut huge.as_slice()).unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
        let mut junk = 5u32.to_be_bytes().to_vec();
        junk.extend_from_slice(b"nope!");
        assert!(read_frame(&mut junk.as_slice()).is_err());
    }
}
