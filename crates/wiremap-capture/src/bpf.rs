//! Kernel packet filters: a tcpdump expression compiled to classic BPF by the system's
//! `tcpdump -ddd` (the one piece borrowed from libpcap, and only when a filter is asked for).

use crate::live::LiveError;
use crate::LinkType;

/// One classic BPF instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    /// Opcode.
    pub code: u16,
    /// Jump if true.
    pub jt: u8,
    /// Jump if false.
    pub jf: u8,
    /// Constant.
    pub k: u32,
}

/// Compiles a tcpdump filter expression for `link` with the system's `tcpdump -ddd`
/// (the one piece borrowed from libpcap, and only when a filter is asked for).
pub fn compile_bpf(expr: &str, link: LinkType) -> Result<Vec<BpfInsn>, LiveError> {
    let err = |reason: String| LiveError::Bpf {
        expr: expr.to_string(),
        reason,
    };
    let dlt = match link {
        LinkType::ETHERNET => "EN10MB",
        _ => "RAW",
    };
    let out = std::process::Command::new("tcpdump")
        .args(["-ddd", "-y", dlt, "--", expr])
        .output()
        .map_err(|e| err(format!("cannot run tcpdump to compile it: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        return Err(err(msg
            .lines()
            .find(|l| !l.contains("WARNING"))
            .unwrap_or("")
            .trim()
            .to_string()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let n: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| err("unexpected tcpdump output".into()))?;
    let prog: Vec<BpfInsn> = lines
        .filter_map(|l| {
            let v: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            match v[..] {
                [code, jt, jf, k] => Some(BpfInsn {
                    code: code as u16,
                    jt: jt as u8,
                    jf: jf as u8,
                    k,
                }),
                _ => None,
            }
        })
        .collect();
    if prog.len() != n || n == 0 {
        return Err(err("unexpected tcpdump output".into()));
    }
    Ok(prog)
}
