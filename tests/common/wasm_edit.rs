//! Editing a built component at the byte level, to make a hostile variant
//! of a real plugin that no compiler would emit: here, extra linear
//! memories in its core modules. The binary format is sections of
//! `id, LEB128 size, content`; a component's core-module section (id 1)
//! holds a whole module, whose memory section (id 5) is a vector of limits.

/// `component` with `extra` memories of `min_pages` 64 KiB pages added to
/// every core module that defines memories of its own.
pub fn with_extra_memories(component: &[u8], extra: u32, min_pages: u32) -> Vec<u8> {
    edit_sections(component, |id, content| match id {
        1 => Some(edit_sections(content, |id, content| {
            (id == 5).then(|| add_memories(content, extra, min_pages))
        })),
        _ => None,
    })
}

/// Copies the 8-byte header and every section of `binary`, replacing the
/// content of those for which `edit` returns one.
fn edit_sections(binary: &[u8], mut edit: impl FnMut(u8, &[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut out = binary[..8].to_vec();
    let mut at = 8;
    while at < binary.len() {
        let id = binary[at];
        let (size, used) = read_leb(&binary[at + 1..]);
        let start = at + 1 + used;
        let content = &binary[start..start + size as usize];
        let content = edit(id, content).unwrap_or_else(|| content.to_vec());
        out.push(id);
        write_leb(&mut out, content.len() as u32);
        out.extend_from_slice(&content);
        at = start + size as usize;
    }
    out
}

fn add_memories(section: &[u8], extra: u32, min_pages: u32) -> Vec<u8> {
    let (count, used) = read_leb(section);
    let mut out = Vec::new();
    write_leb(&mut out, count + extra);
    out.extend_from_slice(&section[used..]);
    for _ in 0..extra {
        out.push(0x00); // limits: a minimum, no maximum
        write_leb(&mut out, min_pages);
    }
    out
}

fn read_leb(bytes: &[u8]) -> (u32, usize) {
    let (mut value, mut shift) = (0u32, 0);
    for (i, b) in bytes.iter().enumerate() {
        value |= u32::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return (value, i + 1);
        }
        shift += 7;
    }
    panic!("truncated LEB128");
}

fn write_leb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
