use std::fmt;

use crate::lexer::Span;

/// What kind of mistake a filter has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// It does not parse.
    Syntax,
    /// A name that is no variable, field or function.
    Unknown,
    /// Operands or arguments of the wrong type.
    Type,
    /// Past a limit: longer or deeper than [`limits`](crate::limits) allow, a regular
    /// expression over its size budget, a time outside the range of `i64` nanoseconds.
    Limit,
}

/// A filter that cannot be compiled, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct KflError {
    /// Kind.
    pub kind: ErrorKind,
    /// One-line explanation.
    pub message: String,
    /// Offending bytes.
    pub span: Span,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The source line holding the error.
    pub source_line: String,
    /// Characters of the source line before the error and under it, for the caret.
    caret: (usize, usize),
}

impl KflError {
    pub(crate) fn new(kind: ErrorKind, src: &str, span: Span, message: String) -> KflError {
        // Widen the span to whole characters: the lexer may point at a byte inside one (a bad
        // escape followed by a multi-byte character).
        let mut start = span.start.min(src.len());
        while !src.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = span.end.clamp(start, src.len());
        while !src.is_char_boundary(end) {
            end += 1;
        }
        let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
        let line = src[..start].matches('\n').count() + 1;
        let before = src[line_start..start].chars().count();
        let width = src[start..end.min(line_end)].chars().count().max(1);
        KflError {
            kind,
            message,
            span,
            line,
            column: before + 1,
            source_line: src[line_start..line_end].to_string(),
            caret: (before, width),
        }
    }

    pub(crate) fn syntax(src: &str, span: Span, message: String) -> KflError {
        KflError::new(ErrorKind::Syntax, src, span, message)
    }

    /// The source line and a caret line under the offending part.
    pub fn caret(&self) -> String {
        format!(
            "{}\n{}{}",
            self.source_line,
            " ".repeat(self.caret.0),
            "^".repeat(self.caret.1)
        )
    }
}

impl fmt::Display for KflError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// Edit distance with transpositions (optimal string alignment), for "did you mean" hints.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}
