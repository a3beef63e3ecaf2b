//! Field offsets of kernel structs, read from the running kernel's BTF.
//!
//! Rust eBPF cannot emit CO-RE relocations, so the carrier hook receives the offsets of
//! `net_device.ifindex`, `net_device.nd_net` and `net.ns.inum` as load-time globals. aya parses BTF
//! but does not expose struct members, hence this small reader of the BTF type section.

use std::collections::HashMap;

/// Errors reading offsets.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read kernel BTF at {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("kernel BTF is malformed: {0}")]
    Malformed(&'static str),
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    #[error("kernel BTF struct {strukt} has no member {member}")]
    NoMember { strukt: String, member: String },
}

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;

#[derive(Debug)]
struct Member {
    name: u32,
    ty: u32,
    bit_offset: u32,
}

#[derive(Debug)]
enum Type {
    Composite { name: u32, members: Vec<Member> },
    Alias { ty: u32 },
    Other,
}

/// The parsed types and strings of one BTF blob.
#[derive(Debug)]
pub struct KernelBtf {
    types: Vec<Type>,
    strings: Vec<u8>,
    structs_by_name: HashMap<String, u32>,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, BtfError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(BtfError::Malformed("truncated"))
}

impl KernelBtf {
    /// Reads `/sys/kernel/btf/vmlinux`.
    ///
    /// # Errors
    /// When the file is missing or malformed.
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&data)
    }

    /// Parses a little-endian BTF blob.
    ///
    /// # Errors
    /// When the blob is malformed.
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        if data.get(0..2) != Some(&[0x9f, 0xeb]) {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let (type_off, type_len) = (u32_at(data, 8)? as usize, u32_at(data, 12)? as usize);
        let (str_off, str_len) = (u32_at(data, 16)? as usize, u32_at(data, 20)? as usize);
        let types_sec = data
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or(BtfError::Malformed("type section"))?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Malformed("string section"))?
            .to_vec();
        let mut types = vec![Type::Other]; // type id 0 is void
        let mut at = 0;
        while at < types_sec.len() {
            let name = u32_at(types_sec, at)?;
            let info = u32_at(types_sec, at + 4)?;
            let size_or_type = u32_at(types_sec, at + 8)?;
            at += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 != 0;
            let extra = match kind {
                1 | 14 | 17 => 4,                                // int, var, decl_tag
                3 => 12,                                         // array
                KIND_STRUCT | KIND_UNION | 15 | 19 => vlen * 12, // members, datasec, enum64
                6 | 13 => vlen * 8,                              // enum, func_proto
                _ => 0,
            };
            let ty = match kind {
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for m in 0..vlen {
                        let base = at + m * 12;
                        let off = u32_at(types_sec, base + 8)?;
                        members.push(Member {
                            name: u32_at(types_sec, base)?,
                            ty: u32_at(types_sec, base + 4)?,
                            bit_offset: if kind_flag { off & 0x00ff_ffff } else { off },
                        });
                    }
                    Type::Composite { name, members }
                }
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    Type::Alias { ty: size_or_type }
                }
                _ => Type::Other,
            };
            types.push(ty);
            at += extra;
        }
        let mut structs_by_name = HashMap::new();
        for (id, ty) in types.iter().enumerate() {
            if let Type::Composite { name, .. } = ty {
                let n = Self::str_at(&strings, *name);
                if !n.is_empty() {
                    structs_by_name.entry(n.to_owned()).or_insert(id as u32);
                }
            }
        }
        Ok(Self {
            types,
            strings,
            structs_by_name,
        })
    }

    fn str_at(strings: &[u8], off: u32) -> &str {
        let rest = strings.get(off as usize..).unwrap_or(&[]);
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    fn resolve(&self, mut ty: u32) -> u32 {
        for _ in 0..16 {
            match self.types.get(ty as usize) {
                Some(Type::Alias { ty: next }) => ty = *next,
                _ => break,
            }
        }
        ty
    }

    /// Byte offset of `path` (members separated by `.`, descending through embedded structs and
    /// anonymous unions) inside struct `strukt`.
    ///
    /// # Errors
    /// When the struct or a member does not exist.
    pub fn offset_of(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut ty = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.into()))?;
        let mut bits = 0;
        for member in path.split('.') {
            let (off, next) =
                self.find_member(ty, member, 0)
                    .ok_or_else(|| BtfError::NoMember {
                        strukt: strukt.into(),
                        member: member.into(),
                    })?;
            bits += off;
            ty = self.resolve(next);
        }
        Ok(bits / 8)
    }

    /// Finds `name` in composite `ty`, also inside anonymous members; returns (bit offset, type).
    fn find_member(&self, ty: u32, name: &str, depth: u32) -> Option<(u32, u32)> {
        let Some(Type::Composite { members, .. }) = self.types.get(self.resolve(ty) as usize)
        else {
            return None;
        };
        for m in members {
            let mname = Self::str_at(&self.strings, m.name);
            if mname == name {
                return Some((m.bit_offset, m.ty));
            }
            if mname.is_empty()
                && depth < 8
                && let Some((off, t)) = self.find_member(m.ty, name, depth + 1)
            {
                return Some((m.bit_offset + off, t));
            }
        }
        None
    }
}

/// The offsets the carrier hook needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CarrierHookOffsets {
    pub netdev_ifindex: u32,
    pub netdev_nd_net: u32,
    pub net_ns_inum: u32,
}

impl CarrierHookOffsets {
    /// Reads them from `btf`.
    ///
    /// # Errors
    /// When the running kernel's structs lack one of the fields.
    pub fn from_btf(btf: &KernelBtf) -> Result<Self, BtfError> {
        Ok(Self {
            netdev_ifindex: btf.offset_of("net_device", "ifindex")?,
            netdev_nd_net: btf.offset_of("net_device", "nd_net")?,
            net_ns_inum: btf.offset_of("net", "ns.inum")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made BTF blob: `struct inner { int a; int b; }`, `struct outer { long x; struct inner in; }`.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0a\0b\0inner\0x\0in\0outer\0".to_vec();
        let s = |needle: &str| {
            let pos = strings.windows(needle.len() + 2).position(|w| {
                w[0] == 0 && &w[1..=needle.len()] == needle.as_bytes() && w[needle.len() + 1] == 0
            });
            pos.unwrap() as u32 + 1
        };
        let mut t = Vec::new();
        let mut push = |v: &[u32]| v.iter().for_each(|x| t.extend(x.to_le_bytes()));
        push(&[s("int"), 1 << 24, 4, 32]); // [1] int, 4 bytes
        push(&[s("inner"), (4 << 24) | 2, 8, s("a"), 1, 0, s("b"), 1, 32]); // [2] struct inner
        push(&[s("outer"), (4 << 24) | 2, 16, s("x"), 1, 0, s("in"), 4, 64]); // [3] struct outer
        push(&[0, 8 << 24, 2]); // [4] typedef -> inner
        let mut out = vec![0x9f, 0xeb, 1, 0];
        out.extend(24u32.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend((t.len() as u32).to_le_bytes());
        out.extend((t.len() as u32).to_le_bytes());
        out.extend((strings.len() as u32).to_le_bytes());
        out.extend(t);
        out.extend(strings);
        out
    }

    #[test]
    fn nested_offsets_through_typedefs() {
        let btf = KernelBtf::parse(&blob()).unwrap();
        assert_eq!(btf.offset_of("outer", "x").unwrap(), 0);
        assert_eq!(btf.offset_of("outer", "in.b").unwrap(), 12);
        assert!(matches!(
            btf.offset_of("outer", "nope"),
            Err(BtfError::NoMember { .. })
        ));
        assert!(matches!(
            btf.offset_of("nope", "x"),
            Err(BtfError::NoStruct(_))
        ));
    }

    #[test]
    fn truncated_blobs_are_errors() {
        let b = blob();
        // The string section ends the blob: every cut loses part of what the header promises.
        for cut in 0..b.len() {
            assert!(KernelBtf::parse(&b[..cut]).is_err(), "cut at {cut}");
        }
        assert!(KernelBtf::parse(&b).is_ok(), "the whole blob parses");
    }
}
