//! The syntax tree and the recursive-descent parser (CEL grammar, plus `and`/`or`/`not`).

use crate::error::KflError;
use crate::lexer::{lex, Span, Tok};

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

/// Nesting limit, so a hostile filter cannot overflow the stack.
const MAX_DEPTH: usize = 200;

struct Parser<'s> {
    src: &'s str,
    toks: Vec<(Tok, Span)>,
    pos: usize,
    depth: usize,
}

/// Parses a filter.
pub fn parse(src: &str) -> Result<Expr, KflError> {
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
        if self.depth > MAX_DEPTH {
            return Err(KflError::syntax(
                self.src,
                self.span(),
                "filter nested too deeply".into(),
            ));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, KflError> {
        self.enter()?;
        let c = self.binary(1)?;
        let r = if *self.peek() == Tok::Question {
            self.bump();
            let a = self.binary(1)?;
            self.expect(Tok::Colon, "`:` of the conditional")?;
            let b = self.expr()?;
            let span = join(c.span, b.span);
            Expr {
                kind: ExprKind::Cond(Box::new(c), Box::new(a), Box::new(b)),
                span,
            }
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

    /// Precedence climbing; all binary operators are left-associative.
    fn binary(&mut self, min: u8) -> Result<Expr, KflError> {
        self.enter()?;
        let mut lhs = self.unary()?;
        while let Some(op) = self.op_here() {
            if op.precedence() < min {
                break;
            }
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
            let rhs = self.binary(op.precedence() + 1)?;
            let span = join(lhs.span, rhs.span);
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, KflError> {
        match self.peek() {
            Tok::Not => {
                let s = self.bump().1;
                self.enter()?;
                let e = self.unary()?;
                self.depth -= 1;
                let span = join(s, e.span);
                Ok(Expr {
                    kind: ExprKind::Not(Box::new(e)),
                    span,
                })
            }
            Tok::Minus => {
                let s = self.bump().1;
                self.enter()?;
                let e = self.unary()?;
                self.depth -= 1;
                let span = join(s, e.span);
                // Fold `-literal` so that i64::MIN is expressible.
                let kind = match e.kind {
                    ExprKind::Lit(Lit::Int(i)) => ExprKind::Lit(Lit::Int(i.wrapping_neg())),
                    ExprKind::Lit(Lit::Double(d)) => ExprKind::Lit(Lit::Double(-d)),
                    other => ExprKind::Neg(Box::new(Expr {
                        kind: other,
                        span: e.span,
                    })),
                };
                Ok(Expr { kind, span })
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
                        e = Expr {
                            kind: ExprKind::Call {
                                target: Some(Box::new(e)),
                                func: name,
                                args,
                            },
                            span,
                        };
                    } else {
                        let span = join(e.span, ns);
                        e = Expr {
                            kind: ExprKind::Select(Box::new(e), name),
                            span,
                        };
                    }
                }
                Tok::LBracket => {
                    self.bump();
                    let idx = self.expr()?;
                    let end = self.expect(Tok::RBracket, "`]`")?;
                    let span = join(e.span, end);
                    e = Expr {
                        kind: ExprKind::Index(Box::new(e), Box::new(idx)),
                        span,
                    };
                }
                _ => return Ok(e),
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, KflError> {
        let (t, s) = self.bump();
        let lit = |l: Lit| {
            Ok(Expr {
                kind: ExprKind::Lit(l),
                span: s,
            })
        };
        match t {
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
                    return Ok(Expr {
                        kind: ExprKind::Call {
                            target: None,
                            func: name,
                            args,
                        },
                        span: join(s, end),
                    });
                }
                Ok(Expr {
                    kind: ExprKind::Ident(name),
                    span: s,
                })
            }
            Tok::Dot => match self.bump() {
                // A leading dot names the root scope: `.src.ip` is `src.ip`.
                (Tok::Ident(name), ns) => Ok(Expr {
                    kind: ExprKind::Ident(name),
                    span: join(s, ns),
                }),
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
                    kind: e.kind,
                    span: join(s, end),
                })
            }
            Tok::LBracket => {
                let (items, end) = self.args(Tok::RBracket, "`]` closing the list")?;
                Ok(Expr {
                    kind: ExprKind::List(items),
                    span: join(s, end),
                })
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
                Ok(Expr {
                    kind: ExprKind::Map(entries),
                    span: join(s, end),
                })
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
