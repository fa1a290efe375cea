//! The syntax tree and the recursive-descent parser (CEL grammar, plus `and`/`or`/`not`).

use crate::error::{ErrorKind, KflError};
use crate::lexer::{lex, Span, Tok};
use crate::limits::{guarded, MAX_FILTER_BYTES, MAX_HEIGHT, MAX_NESTING};

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// `true`/`false`.
    Bool(bool),
    /// Signed integer.
    Int(i64),
    /// Unsigned integer (`1u`).
    Uint(u64),
    /// Double.
    Double(f64),
    /// String.
    Str(String),
    /// Bytes (`b"…"`).
    Bytes(Vec<u8>),
    /// `null`.
    Null,
}

/// Operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `||`
    Or,
    /// `&&`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
}

impl Op {
    /// Source form.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Or => "||",
            Op::And => "&&",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In => "in",
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Rem => "%",
        }
    }

    /// Binding strength (higher binds tighter).
    pub fn precedence(self) -> u8 {
        match self {
            Op::Or => 1,
            Op::And => 2,
            Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::In => 3,
            Op::Add | Op::Sub => 4,
            Op::Mul | Op::Div | Op::Rem => 5,
        }
    }
}

/// An expression node with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is.
    pub span: Span,
    /// Levels of the tree from this node down (a leaf is 1), kept so that the parser bounds
    /// the height while it builds, without walking the tree.
    height: u32,
}

impl Expr {
    /// Levels of the syntax tree from this node down (a leaf is 1); at most
    /// [`MAX_HEIGHT`](crate::MAX_HEIGHT).
    pub fn height(&self) -> usize {
        self.height as usize
    }
}

/// The height of the tallest child of a node of this shape.
fn child_height(kind: &ExprKind) -> u32 {
    let h = |e: &Expr| e.height;
    match kind {
        ExprKind::Lit(_) | ExprKind::Ident(_) => 0,
        ExprKind::Select(t, _) | ExprKind::Not(t) | ExprKind::Neg(t) => h(t),
        ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => h(a).max(h(b)),
        ExprKind::Cond(a, b, c) => h(a).max(h(b)).max(h(c)),
        ExprKind::Call { target, args, .. } => args
            .iter()
            .map(h)
            .chain(target.as_deref().map(h))
            .max()
            .unwrap_or(0),
        ExprKind::List(items) => items.iter().map(h).max().unwrap_or(0),
        ExprKind::Map(items) => items.iter().map(|(k, v)| h(k).max(h(v))).max().unwrap_or(0),
    }
}

/// Expression shapes.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A literal.
    Lit(Lit),
    /// A name.
    Ident(String),
    /// `operand.field`.
    Select(Box<Expr>, String),
    /// `operand[index]`.
    Index(Box<Expr>, Box<Expr>),
    /// `f(args)` or `target.f(args)`.
    Call {
        /// Receiver, for method calls.
        target: Option<Box<Expr>>,
        /// Function name.
        func: String,
        /// Arguments.
        args: Vec<Expr>,
    },
    /// `!x`.
    Not(Box<Expr>),
    /// `-x`.
    Neg(Box<Expr>),
    /// `a op b`.
    Binary(Op, Box<Expr>, Box<Expr>),
    /// `c ? a : b`.
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `[a, b]`.
    List(Vec<Expr>),
    /// `{k: v}`.
    Map(Vec<(Expr, Expr)>),
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<(Tok, Span)>,
    pos: usize,
    depth: usize,
}

/// Parses a filter.
///
/// The source, its token count, the parser's recursion and the height of the tree are all
/// bounded (see [`limits`](crate::limits)), so every later pass — checking, evaluation,
/// rendering, dropping — recurses at most [`MAX_HEIGHT`](crate::MAX_HEIGHT) levels.
pub fn parse(src: &str) -> Result<Expr, KflError> {
    if src.len() > MAX_FILTER_BYTES {
        // No source line in the error: it would copy the oversized input.
        return Err(KflError::new(
            ErrorKind::Limit,
            "",
            Span::default(),
            format!(
                "filter is {} bytes; the limit is {MAX_FILTER_BYTES}",
                src.len()
            ),
        ));
    }
    let toks = lex(src)?;
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        depth: 0,
    };
    if matches!(p.peek(), Tok::Eof) {
        return Err(KflError::syntax(src, p.span(), "empty filter".into()));
    }
    let e = p.expr()?;
    if !matches!(p.peek(), Tok::Eof) {
        let t = p.peek().describe();
        return Err(KflError::syntax(
            src,
            p.span(),
            format!("unexpected {t} after a complete expression"),
        ));
    }
    Ok(e)
}

fn join(a: Span, b: Span) -> Span {
    Span {
        start: a.start.min(b.start),
        end: a.end.max(b.end),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].0
    }
    fn span(&self) -> Span {
        self.toks[self.pos.min(self.toks.len() - 1)].1
    }
    fn bump(&mut self) -> (Tok, Span) {
        let t = self.toks[self.pos.min(self.toks.len() - 1)].clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }
    fn expect(&mut self, want: Tok, what: &str) -> Result<Span, KflError> {
        if *self.peek() == want {
            return Ok(self.bump().1);
        }
        let found = self.peek().describe();
        Err(KflError::syntax(
            self.src,
            self.span(),
            format!("expected {what}, found {found}"),
        ))
    }
    fn enter(&mut self) -> Result<(), KflError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(KflError::new(
                ErrorKind::Limit,
                self.src,
                self.span(),
                format!("filter nested too deeply (more than {MAX_NESTING} levels)"),
            ));
        }
        Ok(())
    }

    /// Builds a node, refusing one that would make the tree higher than [`MAX_HEIGHT`]; the
    /// error points at the last token read, where the chain became too long.
    fn node(&self, kind: ExprKind, span: Span) -> Result<Expr, KflError> {
        let height = child_height(&kind) + 1;
        if height as usize > MAX_HEIGHT {
            let at = self.toks[self.pos.saturating_sub(1)].1;
            return Err(KflError::new(
                ErrorKind::Limit,
                self.src,
                at,
                format!(
                    "expression too deep: more than {MAX_HEIGHT} levels of operators, fields, \
                     calls or indexes (`&&` and `||` chains of any length are fine)"
                ),
            ));
        }
        Ok(Expr { kind, span, height })
    }

    fn leaf(kind: ExprKind, span: Span) -> Expr {
        Expr {
            kind,
            span,
            height: 1,
        }
    }

    fn expr(&mut self) -> Result<Expr, KflError> {
        guarded(|| self.expr_here())
    }

    fn expr_here(&mut self) -> Result<Expr, KflError> {
        self.enter()?;
        let c = self.binary(1)?;
        let r = if *self.peek() == Tok::Question {
            self.bump();
            let a = self.binary(1)?;
            self.expect(Tok::Colon, "`:` of the conditional")?;
            let b = self.expr()?;
            let span = join(c.span, b.span);
            self.node(ExprKind::Cond(Box::new(c), Box::new(a), Box::new(b)), span)?
        } else {
            c
        };
        self.depth -= 1;
        Ok(r)
    }

    fn op_here(&self) -> Option<Op> {
        Some(match self.peek() {
            Tok::OrOr => Op::Or,
            Tok::AndAnd => Op::And,
            Tok::Eq => Op::Eq,
            Tok::Ne => Op::Ne,
            Tok::Lt => Op::Lt,
            Tok::Le => Op::Le,
            Tok::Gt => Op::Gt,
            Tok::Ge => Op::Ge,
            Tok::In => Op::In,
            Tok::Plus => Op::Add,
            Tok::Minus => Op::Sub,
            Tok::Star => Op::Mul,
            Tok::Slash => Op::Div,
            Tok::Percent => Op::Rem,
            _ => return None,
        })
    }

    /// Reads `op` and the operand after it (of higher precedence).
    fn operand_after(&mut self, op: Op) -> Result<Expr, KflError> {
        let op_span = self.bump().1;
        if matches!(self.peek(), Tok::Eof) {
            return Err(KflError::syntax(
                self.src,
                op_span,
                format!(
                    "expected an expression after `{}`, found the end of the filter",
                    op.as_str()
                ),
            ));
        }
        self.binary(op.precedence() + 1)
    }

    /// Precedence climbing; all binary operators are left-associative. A run of `&&` (or of
    /// `||`) becomes a balanced tree: both are associative, and a generated allow-list of
    /// thousands of alternatives then has logarithmic height instead of one level per term.
    fn binary(&mut self, min: u8) -> Result<Expr, KflError> {
        guarded(|| self.binary_here(min))
    }

    fn binary_here(&mut self, min: u8) -> Result<Expr, KflError> {
        self.enter()?;
        let mut lhs = self.unary()?;
        while let Some(op) = self.op_here() {
            if op.precedence() < min {
                break;
            }
            if matches!(op, Op::And | Op::Or) {
                let mut run = vec![lhs];
                while self.op_here() == Some(op) {
                    run.push(self.operand_after(op)?);
                }
                lhs = self.balanced(op, run)?;
            } else {
                let rhs = self.operand_after(op)?;
                let span = join(lhs.span, rhs.span);
                lhs = self.node(ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span)?;
            }
        }
        self.depth -= 1;
        Ok(lhs)
    }

    /// Joins `run` (in order, not empty) with `op`, pairing neighbours level by level.
    fn balanced(&self, op: Op, mut run: Vec<Expr>) -> Result<Expr, KflError> {
        while run.len() > 1 {
            let mut next = Vec::with_capacity(run.len().div_ceil(2));
            let mut it = run.into_iter();
            while let Some(a) = it.next() {
                match it.next() {
                    Some(b) => {
                        let span = join(a.span, b.span);
                        next.push(self.node(ExprKind::Binary(op, Box::new(a), Box::new(b)), span)?);
                    }
                    None => next.push(a),
                }
            }
            run = next;
        }
        run.pop()
            .ok_or_else(|| KflError::syntax(self.src, self.span(), "expected an expression".into()))
    }

    fn unary(&mut self) -> Result<Expr, KflError> {
        guarded(|| self.unary_here())
    }

    fn unary_here(&mut self) -> Result<Expr, KflError> {
        match self.peek() {
            Tok::Not => {
                let s = self.bump().1;
                self.enter()?;
                let e = self.unary()?;
                self.depth -= 1;
                let span = join(s, e.span);
                self.node(ExprKind::Not(Box::new(e)), span)
            }
            Tok::Minus => {
                let s = self.bump().1;
                // `-9223372036854775808`: the one integer literal that exists only negated.
                if let (Tok::Int(i64::MIN), ns) = self.toks[self.pos.min(self.toks.len() - 1)] {
                    self.bump();
                    return Ok(Self::leaf(ExprKind::Lit(Lit::Int(i64::MIN)), join(s, ns)));
                }
                self.enter()?;
                let e = self.unary()?;
                self.depth -= 1;
                let span = join(s, e.span);
                // Fold `-literal`: negative literals are leaves, as a reader expects.
                match e.kind {
                    ExprKind::Lit(Lit::Int(i)) if i != i64::MIN => {
                        Ok(Self::leaf(ExprKind::Lit(Lit::Int(-i)), span))
                    }
                    ExprKind::Lit(Lit::Double(d)) => {
                        Ok(Self::leaf(ExprKind::Lit(Lit::Double(-d)), span))
                    }
                    _ => self.node(ExprKind::Neg(Box::new(e)), span),
                }
            }
            _ => self.member(),
        }
    }

    fn args(&mut self, close: Tok, what: &str) -> Result<(Vec<Expr>, Span), KflError> {
        let mut args = Vec::new();
        if *self.peek() == close {
            return Ok((args, self.bump().1));
        }
        loop {
            args.push(self.expr()?);
            if *self.peek() == Tok::Comma {
                self.bump();
                if *self.peek() == close {
                    break;
                }
                continue;
            }
            break;
        }
        let end = self.expect(close, what)?;
        Ok((args, end))
    }

    fn member(&mut self) -> Result<Expr, KflError> {
        let mut e = self.primary()?;
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.bump();
                    let (name, ns) = match self.bump() {
                        (Tok::Ident(n), s) => (n, s),
                        (t, s) => {
                            return Err(KflError::syntax(
                                self.src,
                                s,
                                format!("expected a field name after `.`, found {}", t.describe()),
                            ))
                        }
                    };
                    if *self.peek() == Tok::LParen {
                        self.bump();
                        let (args, end) = self.args(Tok::RParen, "`)` closing the call")?;
                        let span = join(e.span, end);
                        let kind = ExprKind::Call {
                            target: Some(Box::new(e)),
                            func: name,
                            args,
                        };
                        e = self.node(kind, span)?;
                    } else {
                        let span = join(e.span, ns);
                        e = self.node(ExprKind::Select(Box::new(e), name), span)?;
                    }
                }
                Tok::LBracket => {
                    self.bump();
                    let idx = self.expr()?;
                    let end = self.expect(Tok::RBracket, "`]`")?;
                    let span = join(e.span, end);
                    e = self.node(ExprKind::Index(Box::new(e), Box::new(idx)), span)?;
                }
                _ => return Ok(e),
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, KflError> {
        let (t, s) = self.bump();
        let lit = |l: Lit| Ok(Self::leaf(ExprKind::Lit(l), s));
        match t {
            // The lexer reads 9223372036854775808 as i64::MIN for `unary` to negate; alone
            // it is out of range.
            Tok::Int(i64::MIN) => Err(KflError::syntax(self.src, s, "integer out of range".into())),
            Tok::Int(i) => lit(Lit::Int(i)),
            Tok::Uint(u) => lit(Lit::Uint(u)),
            Tok::Double(d) => lit(Lit::Double(d)),
            Tok::Str(v) => lit(Lit::Str(v)),
            Tok::Bytes(v) => lit(Lit::Bytes(v)),
            Tok::True => lit(Lit::Bool(true)),
            Tok::False => lit(Lit::Bool(false)),
            Tok::Null => lit(Lit::Null),
            Tok::Ident(name) => {
                if *self.peek() == Tok::LParen {
                    self.bump();
                    let (args, end) = self.args(Tok::RParen, "`)` closing the call")?;
                    let kind = ExprKind::Call {
                        target: None,
                        func: name,
                        args,
                    };
                    return self.node(kind, join(s, end));
                }
                Ok(Self::leaf(ExprKind::Ident(name), s))
            }
            Tok::Dot => match self.bump() {
                // A leading dot names the root scope: `.src.ip` is `src.ip`.
                (Tok::Ident(name), ns) => Ok(Self::leaf(ExprKind::Ident(name), join(s, ns))),
                (t, s) => Err(KflError::syntax(
                    self.src,
                    s,
                    format!("expected a name after `.`, found {}", t.describe()),
                )),
            },
            Tok::LParen => {
                let e = self.expr()?;
                let end = self.expect(Tok::RParen, "`)`")?;
                Ok(Expr {
                    span: join(s, end),
                    ..e
                })
            }
            Tok::LBracket => {
                let (items, end) = self.args(Tok::RBracket, "`]` closing the list")?;
                self.node(ExprKind::List(items), join(s, end))
            }
            Tok::LBrace => {
                let mut entries = Vec::new();
                if *self.peek() != Tok::RBrace {
                    loop {
                        let k = self.expr()?;
                        self.expect(Tok::Colon, "`:` in the map literal")?;
                        let v = self.expr()?;
                        entries.push((k, v));
                        if *self.peek() == Tok::Comma {
                            self.bump();
                            if *self.peek() == Tok::RBrace {
                                break;
                            }
                            continue;
                        }
                        break;
                    }
                }
                let end = self.expect(Tok::RBrace, "`}` closing the map")?;
                self.node(ExprKind::Map(entries), join(s, end))
            }
            Tok::Eof => Err(KflError::syntax(
                self.src,
                s,
                "expected an expression, found the end of the filter".into(),
            )),
            other => Err(KflError::syntax(
                self.src,
                s,
                format!("expected an expression, found {}", other.describe()),
            )),
        }
    }
}
