//! Field offsets of kernel structs, read from the running kernel's BTF.
//!
//! Rust eBPF cannot emit CO-RE relocations, so the carrier hook receives the offsets of
//! `net_device.ifindex`, `net_device.nd_net` and `net.ns.inum` as load-time globals. aya parses BTF
//! but does not expose struct members, hence this small reader of the BTF type section.

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

/// The types and strings of one BTF blob, with where each type's record starts: members and
/// names are read from the records when asked for. (Building every struct with its members and
/// a map of every name took a second per daemon start in the test VMs, for three offsets.)
#[derive(Debug)]
pub struct KernelBtf {
    /// The type section.
    types: Vec<u8>,
    /// The string section.
    strings: Vec<u8>,
    /// Where type id N's record starts in `types` (index 0 stands for void and is never read).
    starts: Vec<u32>,
}

/// One type's record header: its name, kind and member count, and its size or referred type.
struct Record {
    name: u32,
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    size_or_type: u32,
    /// Where its members (or other data following the header) start in the type section.
    members_at: usize,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, BtfError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(BtfError::Malformed("truncated"))
}

/// The record at `at` in the type section, and the length of its trailing data.
fn record_at(types: &[u8], at: usize) -> Result<(Record, usize), BtfError> {
    let info = u32_at(types, at + 4)?;
    let record = Record {
        name: u32_at(types, at)?,
        kind: (info >> 24) & 0x1f,
        vlen: (info & 0xffff) as usize,
        kind_flag: info >> 31 != 0,
        size_or_type: u32_at(types, at + 8)?,
        members_at: at + 12,
    };
    let trailing = match record.kind {
        1 | 14 | 17 => 4,                                       // int, var, decl_tag
        3 => 12,                                                // array
        KIND_STRUCT | KIND_UNION | 15 | 19 => record.vlen * 12, // members, datasec, enum64
        6 | 13 => record.vlen * 8,                              // enum, func_proto
        _ => 0,
    };
    Ok((record, trailing))
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

    /// Parses a little-endian BTF blob: checks that every type record is whole and notes where
    /// each starts.
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
        let types = data
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or(BtfError::Malformed("type section"))?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Malformed("string section"))?;
        let mut starts = vec![0]; // type id 0 is void
        let mut at = 0;
        while at < types.len() {
            let (record, trailing) = record_at(types, at)?;
            let end = record.members_at + trailing;
            if end > types.len() {
                return Err(BtfError::Malformed("truncated"));
            }
            starts.push(u32::try_from(at).map_err(|_| BtfError::Malformed("type section"))?);
            at = end;
        }
        Ok(Self {
            types: types.to_vec(),
            strings: strings.to_vec(),
            starts,
        })
    }

    /// The record of type `id`; `None` for void and ids past the end.
    fn record(&self, id: u32) -> Option<Record> {
        let at = *self.starts.get(id as usize).filter(|_| id != 0)?;
        record_at(&self.types, at as usize).ok().map(|(r, _)| r)
    }

    fn str_at(&self, off: u32) -> &[u8] {
        let rest = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        &rest[..end]
    }

    /// The first struct or union named `name`.
    fn struct_named(&self, name: &str) -> Option<u32> {
        (1..self.starts.len() as u32).find(|&id| {
            self.record(id).is_some_and(|r| {
                matches!(r.kind, KIND_STRUCT | KIND_UNION) && self.str_at(r.name) == name.as_bytes()
            })
        })
    }

    fn resolve(&self, mut ty: u32) -> u32 {
        for _ in 0..16 {
            match self.record(ty) {
                Some(r)
                    if matches!(
                        r.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    ty = r.size_or_type;
                }
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
        self.strukt(strukt)?.offset_of(path)
    }

    /// The struct or union named `name`, to look up several of its members with one search.
    ///
    /// # Errors
    /// When the kernel has no such struct.
    pub fn strukt<'a>(&'a self, name: &'a str) -> Result<Struct<'a>, BtfError> {
        let id = self
            .struct_named(name)
            .ok_or_else(|| BtfError::NoStruct(name.into()))?;
        Ok(Struct {
            btf: self,
            name,
            id,
        })
    }

    /// Finds `name` in composite `ty`, also inside anonymous members; returns (bit offset, type).
    fn find_member(&self, ty: u32, name: &str, depth: u32) -> Option<(u32, u32)> {
        let r = self
            .record(self.resolve(ty))
            .filter(|r| matches!(r.kind, KIND_STRUCT | KIND_UNION))?;
        for m in 0..r.vlen {
            // `parse` checked that the record's members are all there.
            let base = r.members_at + m * 12;
            let (mname, mty, off) = (
                u32_at(&self.types, base).ok()?,
                u32_at(&self.types, base + 4).ok()?,
                u32_at(&self.types, base + 8).ok()?,
            );
            let bit_offset = if r.kind_flag { off & 0x00ff_ffff } else { off };
            let mname = self.str_at(mname);
            if mname == name.as_bytes() {
                return Some((bit_offset, mty));
            }
            if mname.is_empty()
                && depth < 8
                && let Some((inner, t)) = self.find_member(mty, name, depth + 1)
            {
                return Some((bit_offset + inner, t));
            }
        }
        None
    }
}

/// One struct of a [`KernelBtf`], found once.
pub struct Struct<'a> {
    btf: &'a KernelBtf,
    name: &'a str,
    id: u32,
}

impl Struct<'_> {
    /// Byte offset of `path` (members separated by `.`, descending through embedded structs and
    /// anonymous unions) inside this struct.
    ///
    /// # Errors
    /// When a member does not exist.
    pub fn offset_of(&self, path: &str) -> Result<u32, BtfError> {
        let (mut ty, mut bits) = (self.id, 0);
        for member in path.split('.') {
            let (off, next) =
                self.btf
                    .find_member(ty, member, 0)
                    .ok_or_else(|| BtfError::NoMember {
                        strukt: self.name.into(),
                        member: member.into(),
                    })?;
            bits += off;
            ty = self.btf.resolve(next);
        }
        Ok(bits / 8)
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
        // Finding a struct scans the type records from the first: once per struct, not per member.
        let netdev = btf.strukt("net_device")?;
        Ok(Self {
            netdev_ifindex: netdev.offset_of("ifindex")?,
            netdev_nd_net: netdev.offset_of("nd_net")?,
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
