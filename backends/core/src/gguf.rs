//! The header of a GGUF file (llama.cpp's model format): what an engine model is and how much
//! memory it needs, read without loading it.
//!
//! Layout (little-endian): magic `GGUF`, version `u32` (2 or 3), tensor count `u64`, metadata
//! count `u64`, then that many key/value pairs (key: `u64` length + UTF-8; type `u32`; value).
//! Then one info per tensor (name, dimensions, ggml type, offset): its size comes from the
//! type's block size ([`tensor_bytes`]); the per-layer sizes feed the offload plan
//! ([`plan`]). The tensor data is never read; every length is checked against the bytes left
//! in the file, so a truncated or corrupt file is an error naming the byte offset, never a
//! huge allocation.
//!
//! Memory estimate ([`GgufInfo::estimate`]) for `ctx` tokens per slot × `parallel` slots:
//! * weights: the file size (llama.cpp maps the tensors as they are stored);
//! * KV cache: 2 (K and V) × layers × KV heads × head size × ctx × parallel × 2 bytes (f16,
//!   llama.cpp's default cache type);
//! * compute buffer: 512 (llama-server's default micro-batch) × (vocabulary + 16 × embedding
//!   width) × 4 bytes, plus 32 MiB for the server itself — an allowance, not a measurement.

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Why a GGUF header could not be read; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The first four bytes are not `GGUF`.
    #[error("{path} is not a GGUF file: it starts with {found:?}, not \"GGUF\"")]
    NotGguf {
        /// The file.
        path: PathBuf,
        /// What it starts with (escaped).
        found: String,
    },
    /// A GGUF version this reader does not know (1 is obsolete).
    #[error("{path}: GGUF version {version} is not supported (2 and 3 are)")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
    /// The file ends, or a length points, past its last byte.
    #[error(
        "{path} is truncated: {what} at byte {offset} needs {needed} bytes, the file has {len}"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read.
        what: String,
        /// Where it starts.
        offset: u64,
        /// Bytes it needs.
        needed: u64,
        /// The file's size.
        len: u64,
    },
    /// The bytes parse but do not describe a model an engine can serve.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// What a GGUF header says about the model.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufInfo {
    /// Format version (2 or 3).
    pub version: u32,
    /// Number of tensors.
    pub tensor_count: u64,
    /// `general.architecture` (`llama`, `qwen2`, …).
    pub architecture: String,
    /// `general.name`, when present.
    pub name: Option<String>,
    /// `general.size_label` (`135M`, `7B`), when present.
    pub size_label: Option<String>,
    /// `<arch>.block_count`: transformer layers.
    pub block_count: u32,
    /// `<arch>.context_length`: the context it was trained with.
    pub context_length: u32,
    /// `<arch>.embedding_length`.
    pub embedding_length: u32,
    /// `<arch>.attention.head_count`.
    pub head_count: u32,
    /// `<arch>.attention.head_count_kv` (= head_count when absent: no grouped-query attention).
    pub head_count_kv: u32,
    /// Per-head size: `<arch>.attention.key_length`, else embedding / heads.
    pub head_dim: u32,
    /// Vocabulary size (`<arch>.vocab_size` or the tokenizer's token count; 0 when unknown).
    pub vocab_size: u64,
    /// `general.file_type` (llama.cpp's `llama_ftype`), when present.
    pub file_type: Option<u32>,
    /// Whether `tokenizer.chat_template` is present (llama-server `--jinja` uses it).
    pub has_chat_template: bool,
    /// File size in bytes.
    pub file_bytes: u64,
    /// Every tensor's name and size, in file order.
    pub tensors: Vec<TensorInfo>,
}

/// One tensor of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Its name (`blk.3.attn_q.weight`, `output.weight`, …).
    pub name: String,
    /// ggml type id.
    pub ggml_type: u32,
    /// Bytes it takes in the file (and in a device's memory).
    pub bytes: u64,
}

/// Bytes of `elements` values of ggml type `t` (elements per block, bytes per block), or
/// `None` for a type this parser does not know or a count that is not whole blocks.
pub fn tensor_bytes(t: u32, elements: u64) -> Option<u64> {
    let (block, size): (u64, u64) = match t {
        0 => (1, 4),           // F32
        1 | 30 => (1, 2),      // F16, BF16
        2 | 20 => (32, 18),    // Q4_0, IQ4_NL
        3 => (32, 20),         // Q4_1
        6 => (32, 22),         // Q5_0
        7 => (32, 24),         // Q5_1
        8 => (32, 34),         // Q8_0
        9 => (32, 36),         // Q8_1
        10 => (256, 84),       // Q2_K
        11 | 21 => (256, 110), // Q3_K, IQ3_S
        12 => (256, 144),      // Q4_K
        13 => (256, 176),      // Q5_K
        14 => (256, 210),      // Q6_K
        15 => (256, 292),      // Q8_K
        16 | 35 => (256, 66),  // IQ2_XXS, TQ2_0
        17 => (256, 74),       // IQ2_XS
        18 => (256, 98),       // IQ3_XXS
        19 => (256, 50),       // IQ1_S
        22 => (256, 82),       // IQ2_S
        23 => (256, 136),      // IQ4_XS
        24 => (1, 1),          // I8
        25 => (1, 2),          // I16
        26 => (1, 4),          // I32
        27 | 28 => (1, 8),     // I64, F64
        29 => (256, 56),       // IQ1_M
        34 => (256, 54),       // TQ1_0
        39 => (32, 17),        // MXFP4
        _ => return None,
    };
    elements
        .is_multiple_of(block)
        .then(|| (elements / block).saturating_mul(size))
}

/// Memory a model needs, by part (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Weights (the file size).
    pub weights: u64,
    /// KV cache for ctx × parallel tokens at f16.
    pub kv_cache: u64,
    /// Compute buffer allowance.
    pub compute: u64,
}

impl MemoryEstimate {
    /// The sum.
    pub fn total(&self) -> u64 {
        self.weights
            .saturating_add(self.kv_cache)
            .saturating_add(self.compute)
    }
}

impl GgufInfo {
    /// Reads the header of `path`.
    pub fn read(path: &Path) -> Result<GgufInfo, GgufError> {
        let io = |source| GgufError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut r = Reader {
            inner: Box::new(BufReader::with_capacity(1 << 16, file)),
            pos: 0,
            len,
            path,
        };
        header(&mut r)
    }

    /// Reads a header held in memory (`path` only names it in errors): what the fuzz
    /// target feeds, and the same parser as [`GgufInfo::read`].
    pub fn parse(bytes: &[u8], path: &Path) -> Result<GgufInfo, GgufError> {
        let mut r = Reader {
            inner: Box::new(Cursor::new(bytes)),
            pos: 0,
            len: bytes.len() as u64,
            path,
        };
        header(&mut r)
    }

    /// The quantisation name of `general.file_type` (`Q4_1`, `Q4_K_M`, `F16`, …).
    pub fn quantization(&self) -> String {
        let Some(t) = self.file_type else {
            return "unknown".into();
        };
        let name = match t {
            0 => "F32",
            1 => "F16",
            2 => "Q4_0",
            3 => "Q4_1",
            7 => "Q8_0",
            8 => "Q5_0",
            9 => "Q5_1",
            10 => "Q2_K",
            11 => "Q3_K_S",
            12 => "Q3_K_M",
            13 => "Q3_K_L",
            14 => "Q4_K_S",
            15 => "Q4_K_M",
            16 => "Q5_K_S",
            17 => "Q5_K_M",
            18 => "Q6_K",
            19 => "IQ2_XXS",
            20 => "IQ2_XS",
            21 => "Q2_K_S",
            22 => "IQ3_XS",
            23 => "IQ3_XXS",
            24 => "IQ1_S",
            25 => "IQ4_NL",
            26 => "IQ3_S",
            27 => "IQ3_M",
            28 => "IQ2_S",
            29 => "IQ2_M",
            30 => "IQ4_XS",
            31 => "IQ1_M",
            32 => "BF16",
            other => return format!("file_type {other}"),
        };
        name.into()
    }

    /// Memory to serve `parallel` slots of `ctx` tokens each.
    pub fn estimate(&self, ctx: u32, parallel: u32) -> MemoryEstimate {
        // Saturating: a header may claim absurd sizes (found by fuzz/gguf_header); the
        // estimate then says "more than any device has", never wraps or panics.
        let kv = [
            u64::from(self.block_count),
            u64::from(self.head_count_kv),
            u64::from(self.head_dim),
            u64::from(ctx),
            u64::from(parallel.max(1)),
            2,
        ]
        .into_iter()
        .fold(2u64, u64::saturating_mul);
        let compute = self
            .vocab_size
            .saturating_add(16 * u64::from(self.embedding_length))
            .saturating_mul(512 * 4)
            .saturating_add(32 << 20);
        MemoryEstimate {
            weights: self.file_bytes,
            kv_cache: kv,
            compute,
        }
    }
}

/// A bounds-checked little-endian reader over the file.
/// Where header bytes come from: a buffered file (skips keep the buffer) or memory.
trait Source {
    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()>;
    fn skip(&mut self, n: u64) -> std::io::Result<()>;
}

impl Source for BufReader<File> {
    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        Read::read_exact(self, buf)
    }
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        self.seek_relative(n as i64)
    }
}

impl Source for Cursor<&[u8]> {
    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        Read::read_exact(self, buf)
    }
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        self.seek(SeekFrom::Current(n as i64)).map(|_| ())
    }
}

struct Reader<'a> {
    inner: Box<dyn Source + 'a>,
    pos: u64,
    len: u64,
    path: &'a Path,
}

/// A metadata value as far as the header needs it.
enum Value {
    Uint(u64),
    Str(String),
    Array(u64),
    Other,
}

impl Reader<'_> {
    fn need(&self, n: u64, what: &str) -> Result<(), GgufError> {
        if self.len.saturating_sub(self.pos) < n {
            return Err(GgufError::Truncated {
                path: self.path.to_owned(),
                what: what.to_string(),
                offset: self.pos,
                needed: n,
                len: self.len,
            });
        }
        Ok(())
    }

    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, GgufError> {
        self.need(n, what)?;
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|source| GgufError::Io {
                path: self.path.to_owned(),
                source,
            })?;
        self.pos += n;
        Ok(buf)
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), GgufError> {
        self.need(n, what)?;
        self.inner.skip(n).map_err(|source| GgufError::Io {
            path: self.path.to_owned(),
            source,
        })?;
        self.pos += n;
        Ok(())
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        let b = self.bytes(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let n = self.u64(what)?;
        let b = self.bytes(n, what)?;
        String::from_utf8(b).map_err(|_| self.invalid(format!("{what} is not UTF-8")))
    }

    fn invalid(&self, message: String) -> GgufError {
        GgufError::Invalid {
            path: self.path.to_owned(),
            message,
        }
    }

    /// Size of one scalar of GGUF type `t`, `None` for strings/arrays/unknown types.
    fn scalar_size(t: u32) -> Option<u64> {
        match t {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        }
    }

    fn value(&mut self, t: u32, key: &str) -> Result<Value, GgufError> {
        let what = format!("the value of {key}");
        Ok(match t {
            0 | 7 => Value::Uint(u64::from(self.bytes(1, &what)?[0])),
            2 => {
                let b = self.bytes(2, &what)?;
                Value::Uint(u64::from(u16::from_le_bytes([b[0], b[1]])))
            }
            4 => Value::Uint(u64::from(self.u32(&what)?)),
            10 => Value::Uint(self.u64(&what)?),
            8 => Value::Str(self.string(&what)?),
            9 => {
                let item = self.u32(&what)?;
                let count = self.u64(&what)?;
                match (item, Self::scalar_size(item)) {
                    (_, Some(size)) => {
                        let total = count.checked_mul(size).ok_or_else(|| {
                            self.invalid(format!("{key}: array of {count} items overflows"))
                        })?;
                        self.skip(total, &what)?;
                    }
                    (8, None) => {
                        // Strings: each one's length is checked against what is left.
                        self.need(count.saturating_mul(8), &what)?;
                        for _ in 0..count {
                            let n = self.u64(&what)?;
                            self.skip(n, &what)?;
                        }
                    }
                    _ => {
                        return Err(
                            self.invalid(format!("{key}: array of unsupported type {item}"))
                        );
                    }
                }
                Value::Array(count)
            }
            t => match Self::scalar_size(t) {
                Some(n) => {
                    self.skip(n, &what)?;
                    Value::Other
                }
                None => return Err(self.invalid(format!("{key}: unknown value type {t}"))),
            },
        })
    }
}

/// The key/value pairs a parser acts on: unsigned integers, strings, array lengths.
#[derive(Default)]
struct Metadata {
    strings: std::collections::HashMap<String, String>,
    uints: std::collections::HashMap<String, u64>,
    arrays: std::collections::HashMap<String, u64>,
}

/// The metadata count and that many key/value pairs.
fn metadata(r: &mut Reader<'_>) -> Result<Metadata, GgufError> {
    let kv_count = r.u64("the metadata count")?;
    // Each pair takes at least 8 (key length) + 4 (type) + 1 bytes.
    r.need(kv_count.saturating_mul(13), "the metadata")?;
    let mut m = Metadata::default();
    for _ in 0..kv_count {
        let key = r.string("a metadata key")?;
        let t = r.u32(&format!("the type of {key}"))?;
        match r.value(t, &key)? {
            Value::Uint(v) => {
                m.uints.insert(key, v);
            }
            Value::Str(s) => {
                m.strings.insert(key, s);
            }
            Value::Array(n) => {
                m.arrays.insert(key, n);
            }
            Value::Other => {}
        }
    }
    Ok(m)
}

fn header(r: &mut Reader<'_>) -> Result<GgufInfo, GgufError> {
    let magic = r.bytes(4, "the magic")?;
    if magic != b"GGUF" {
        return Err(GgufError::NotGguf {
            path: r.path.to_owned(),
            found: magic.escape_ascii().to_string(),
        });
    }
    let version = r.u32("the version")?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Version {
            path: r.path.to_owned(),
            version,
        });
    }
    let tensor_count = r.u64("the tensor count")?;
    let Metadata {
        strings,
        uints,
        arrays,
    } = metadata(r)?;
    let arch = strings
        .get("general.architecture")
        .cloned()
        .ok_or_else(|| r.invalid("no general.architecture: not a model file".into()))?;
    let need = |k: &str| -> Result<u32, GgufError> {
        let key = format!("{arch}.{k}");
        let v = uints.get(&key).copied().ok_or_else(|| {
            r.invalid(format!(
                "architecture '{arch}' is not supported: it has no {key} (a transformer with attention is needed)"
            ))
        })?;
        u32::try_from(v)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| r.invalid(format!("{key} = {v} is out of range")))
    };
    let block_count = need("block_count")?;
    let embedding_length = need("embedding_length")?;
    let head_count = need("attention.head_count")?;
    let context_length = need("context_length")?;
    let head_count_kv = match uints.get(&format!("{arch}.attention.head_count_kv")) {
        Some(_) => need("attention.head_count_kv")?,
        None => head_count,
    };
    let head_dim = match uints.get(&format!("{arch}.attention.key_length")) {
        Some(_) => need("attention.key_length")?,
        None => embedding_length / head_count,
    };
    let vocab_size = uints
        .get(&format!("{arch}.vocab_size"))
        .or_else(|| arrays.get("tokenizer.ggml.tokens"))
        .copied()
        .unwrap_or(0);
    let tensors = tensor_infos(r, tensor_count)?;
    Ok(GgufInfo {
        tensors,
        version,
        tensor_count,
        name: strings.get("general.name").cloned(),
        size_label: strings.get("general.size_label").cloned(),
        block_count,
        context_length,
        embedding_length,
        head_count,
        head_count_kv,
        head_dim,
        vocab_size,
        file_type: uints
            .get("general.file_type")
            .and_then(|v| u32::try_from(*v).ok()),
        has_chat_template: strings.contains_key("tokenizer.chat_template"),
        file_bytes: r.len,
        architecture: arch,
    })
}

/// The tensor infos that follow the metadata.
fn tensor_infos(r: &mut Reader<'_>, count: u64) -> Result<Vec<TensorInfo>, GgufError> {
    // Each info takes at least 8 (name length) + 4 (dimensions) + 4 (type) + 8 (offset).
    r.need(count.saturating_mul(24), "the tensor infos")?;
    let mut out = Vec::new();
    for i in 0..count {
        let name = r.string(&format!("the name of tensor {i}"))?;
        let dims = r.u32(&format!("the dimensions of {name}"))?;
        if !(1..=4).contains(&dims) {
            return Err(r.invalid(format!(
                "tensor {name} has {dims} dimensions (1 to 4 expected)"
            )));
        }
        let mut elements = 1u64;
        for _ in 0..dims {
            elements = elements.saturating_mul(r.u64(&format!("a dimension of {name}"))?);
        }
        let ggml_type = r.u32(&format!("the type of {name}"))?;
        r.u64(&format!("the offset of {name}"))?;
        let bytes = tensor_bytes(ggml_type, elements).ok_or_else(|| {
            r.invalid(format!(
                "tensor {name}: ggml type {ggml_type} with {elements} elements is not a type this parser knows, or not whole blocks of it"
            ))
        })?;
        out.push(TensorInfo {
            name,
            ggml_type,
            bytes,
        });
    }
    Ok(out)
}

pub mod plan;

#[cfg(test)]
mod tests;
