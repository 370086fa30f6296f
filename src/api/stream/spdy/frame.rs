//! SPDY/3.1 frames, the subset the Kubernetes streaming protocols use (draft-mbelshe-httpbis-spdy-00
//! as moby/spdystream speaks it): SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY,
//! HEADERS, WINDOW_UPDATE and data frames. Header blocks are zlib streams that run across the
//! connection (one inflate and one deflate context per direction); the client's start from the
//! spec's dictionary (section 2.6.10.1, `dictionary.bin`). Ours are written without one,
//! which a zlib reader accepts (its FDICT flag is unset).
//!
//! Hand-written: no maintained Rust crate speaks SPDY (it was retired for HTTP/2), and kubectl
//! still needs it for port-forward and, before 1.30, for exec.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// FIN on a data frame or a SYN_STREAM/SYN_REPLY: the sender's half of the stream ends.
pub const FLAG_FIN: u8 = 0x01;
/// RST_STREAM status CANCEL.
pub const RST_CANCEL: u32 = 5;
/// A data frame's largest payload we write.
pub const MAX_DATA: usize = 32 * 1024;
/// A frame's largest length (24 bits); anything bigger is a protocol error.
const MAX_FRAME: usize = (1 << 24) - 1;

static DICTIONARY: &[u8] = include_bytes!("dictionary.bin");

/// A frame read from the client.
#[derive(Debug, PartialEq)]
pub enum Frame {
    SynStream {
        id: u32,
        flags: u8,
        headers: Vec<(String, String)>,
    },
    Data {
        id: u32,
        flags: u8,
        data: Bytes,
    },
    RstStream {
        id: u32,
    },
    Ping {
        id: u32,
    },
    GoAway,
    /// SETTINGS, WINDOW_UPDATE, HEADERS, SYN_REPLY: nothing for a server of these protocols
    /// to act on (spdystream does no flow control).
    Ignored,
}

/// Cuts frames out of the bytes read, and inflates the client's header blocks.
pub struct Reader {
    buf: BytesMut,
    inflate: Decompress,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            buf: BytesMut::with_capacity(64 * 1024),
            inflate: Decompress::new(true),
        }
    }
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("spdy: {}", what.into()))
}

impl Reader {
    /// Room to read more bytes into.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The next whole frame buffered, if there is one.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([0, self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        let first = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let flags = self.buf[4];
        self.buf.advance(8);
        let mut body = self.buf.split_to(len).freeze();
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                id: first & 0x7fff_ffff,
                flags,
                data: body,
            }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(bad(format!("version {version}, want {VERSION}")));
        }
        let need = |body: &Bytes, n: usize| {
            if body.len() < n {
                Err(bad(format!("control frame of {} bytes", body.len())))
            } else {
                Ok(())
            }
        };
        Ok(Some(match (first & 0xffff) as u16 {
            SYN_STREAM => {
                need(&body, 10)?;
                let id = body.get_u32() & 0x7fff_ffff;
                body.advance(6); // associated stream, priority, slot
                let block = self.inflate_block(&body)?;
                Frame::SynStream {
                    id,
                    flags,
                    headers: parse_headers(&block)?,
                }
            }
            HEADERS | SYN_REPLY => {
                // The inflate context runs across every header block: read it even when
                // nothing is done with it.
                need(&body, 4)?;
                body.advance(4);
                self.inflate_block(&body)?;
                Frame::Ignored
            }
            RST_STREAM => {
                need(&body, 8)?;
                Frame::RstStream {
                    id: body.get_u32() & 0x7fff_ffff,
                }
            }
            PING => {
                need(&body, 4)?;
                Frame::Ping { id: body.get_u32() }
            }
            GOAWAY => Frame::GoAway,
            SETTINGS | WINDOW_UPDATE => Frame::Ignored,
            other => return Err(bad(format!("control frame type {other}"))),
        }))
    }

    fn inflate_block(&mut self, input: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let mut rest = input;
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(out.capacity().max(1024));
            }
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            let r = self
                .inflate
                .decompress_vec(rest, &mut out, FlushDecompress::Sync);
            rest = &rest[(self.inflate.total_in() - before_in) as usize..];
            let stuck =
                before_in == self.inflate.total_in() && before_out == self.inflate.total_out();
            match r {
                Ok(Status::StreamEnd) => break,
                Ok(_) if rest.is_empty() && out.capacity() > out.len() => break,
                Ok(_) if stuck && !rest.is_empty() => {
                    return Err(bad("header block does not inflate"));
                }
                Ok(_) => continue,
                Err(e) if e.needs_dictionary().is_some() => self
                    .inflate
                    .set_dictionary(DICTIONARY)
                    .map(drop)
                    .map_err(|e| bad(format!("header dictionary: {e}")))?,
                Err(e) => return Err(bad(format!("header block: {e}"))),
            }
        }
        Ok(out)
    }
}

/// A name/value header block: a count, then length-prefixed names and values (a value of
/// several, NUL-separated).
fn parse_headers(mut block: &[u8]) -> io::Result<Vec<(String, String)>> {
    let take = |block: &mut &[u8]| -> io::Result<String> {
        if block.len() < 4 {
            return Err(bad("short header block"));
        }
        let n = block.get_u32() as usize;
        if block.len() < n {
            return Err(bad("short header block"));
        }
        let s = String::from_utf8_lossy(&block[..n]).into_owned();
        block.advance(n);
        Ok(s)
    };
    if block.len() < 4 {
        return Err(bad("empty header block"));
    }
    let count = block.get_u32();
    let mut headers = Vec::new();
    for _ in 0..count {
        let name = take(&mut block)?.to_ascii_lowercase();
        let value = take(&mut block)?;
        for v in value.split('\0') {
            headers.push((name.clone(), v.to_owned()));
        }
    }
    Ok(headers)
}

/// Writes frames, deflating our header blocks.
pub struct Writer {
    deflate: Compress,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            deflate: Compress::new(Compression::default(), true),
        }
    }
}

fn control(out: &mut BytesMut, kind: u16, flags: u8, len: usize) {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u32((u32::from(flags) << 24) | len as u32);
}

impl Writer {
    /// SYN_REPLY for stream `id`, with no headers (the Kubernetes servers send none).
    pub fn syn_reply(&mut self, out: &mut BytesMut, id: u32, flags: u8) -> io::Result<()> {
        let block = self.deflate_block(&0u32.to_be_bytes())?;
        control(out, SYN_REPLY, flags, 4 + block.len());
        out.put_u32(id);
        out.put_slice(&block);
        Ok(())
    }

    pub fn data(out: &mut BytesMut, id: u32, flags: u8, data: &[u8]) {
        debug_assert!(data.len() <= MAX_FRAME);
        out.put_u32(id & 0x7fff_ffff);
        out.put_u32((u32::from(flags) << 24) | data.len() as u32);
        out.put_slice(data);
    }

    pub fn rst_stream(out: &mut BytesMut, id: u32, status: u32) {
        control(out, RST_STREAM, 0, 8);
        out.put_u32(id);
        out.put_u32(status);
    }

    pub fn ping(out: &mut BytesMut, id: u32) {
        control(out, PING, 0, 4);
        out.put_u32(id);
    }

    pub fn go_away(out: &mut BytesMut, last_id: u32) {
        control(out, GOAWAY, 0, 8);
        out.put_u32(last_id);
        out.put_u32(0); // OK
    }

    fn deflate_block(&mut self, input: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut rest = input;
        loop {
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(rest, &mut out, FlushCompress::Sync)
                .map_err(|e| bad(format!("deflate: {e}")))?;
            rest = &rest[(self.deflate.total_in() - before) as usize..];
            if rest.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN_STREAM as spdystream writes it: the header block deflated with the dictionary.
    fn client_syn_stream(deflate: &mut Compress, id: u32, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        block.extend((headers.len() as u32).to_be_bytes());
        for (n, v) in headers {
            block.extend((n.len() as u32).to_be_bytes());
            block.extend(n.as_bytes());
            block.extend((v.len() as u32).to_be_bytes());
            block.extend(v.as_bytes());
        }
        let mut z = Vec::with_capacity(block.len() + 64);
        deflate
            .compress_vec(&block, &mut z, FlushCompress::Sync)
            .unwrap();
        let mut out = BytesMut::new();
        control(&mut out, SYN_STREAM, 0, 10 + z.len());
        out.put_u32(id);
        out.put_u32(0);
        out.put_u16(0);
        out.put_slice(&z);
        out.to_vec()
    }

    #[test]
    fn reads_syn_streams_deflated_with_the_dictionary_across_the_connection() {
        let mut deflate = Compress::new(Compression::best(), true);
        deflate.set_dictionary(DICTIONARY).unwrap();
        let mut r = Reader::default();
        let a = client_syn_stream(&mut deflate, 1, &[("streamtype", "error")]);
        let b = client_syn_stream(&mut deflate, 3, &[("streamtype", "data"), ("port", "80")]);
        r.buffer().extend_from_slice(&a);
        r.buffer().extend_from_slice(&b[..5]);
        assert_eq!(
            r.next_frame().unwrap(),
            Some(Frame::SynStream {
                id: 1,
                flags: 0,
                headers: vec![("streamtype".into(), "error".into())]
            })
        );
        assert_eq!(r.next_frame().unwrap(), None, "half a frame waits");
        r.buffer().extend_from_slice(&b[5..]);
        let Some(Frame::SynStream { id: 3, headers, .. }) = r.next_frame().unwrap() else {
            panic!("second stream")
        };
        assert_eq!(headers[1], ("port".into(), "80".into()));
    }

    #[test]
    fn writes_replies_a_zlib_reader_without_dictionary_reads() {
        let mut w = Writer::default();
        let mut out = BytesMut::new();
        w.syn_reply(&mut out, 1, 0).unwrap();
        w.syn_reply(&mut out, 3, FLAG_FIN).unwrap();
        Writer::data(&mut out, 3, FLAG_FIN, b"hi");
        // Inflate the two header blocks with one context, as the client does.
        let mut inflate = Decompress::new(true);
        let mut buf = out.freeze();
        for want_flags in [0u8, FLAG_FIN] {
            let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
            assert_eq!(buf[4], want_flags);
            let body = buf.slice(12..8 + len);
            let mut block = Vec::with_capacity(64);
            inflate
                .decompress_vec(&body, &mut block, FlushDecompress::Sync)
                .unwrap();
            assert_eq!(block, 0u32.to_be_bytes());
            buf.advance(8 + len);
        }
        assert_eq!(&buf[..], &[0, 0, 0, 3, 1, 0, 0, 2, b'h', b'i']);
    }
}
