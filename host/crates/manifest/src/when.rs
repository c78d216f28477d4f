//! `when` conditions: a small expression language over earlier stages'
//! outputs, parsed (and checked) with the manifest, evaluated by the
//! scheduler when the stage's dependencies are done.
//!
//! ```text
//! triage.decision == 'HIGH'
//! triage.decision in ['MEDIUM', 'HIGH'] and not review.metrics.score < 0.5
//! execution.changed contains 'docs/'
//! ```
//!
//! Paths are `STAGE.decision`, `STAGE.status`, `STAGE.summary`,
//! `STAGE.metrics.NAME`, `STAGE.artifacts` (names) and `STAGE.changed`
//! (workspace files the stage changed). `contains` on a list is true when an
//! entry starts with the text. A missing value (no decision, no such metric)
//! is `null`: equal to nothing but `null`, never less or greater.

use serde::Serialize;

/// Longest condition, in bytes: a real one is a line; a bound keeps every
/// walk over its tree (checking, evaluating, dropping) shallow.
pub const MAX_CONDITION_BYTES: usize = 4096;
/// Deepest nesting of parentheses, `not`s and lists.
pub const MAX_NESTING: u32 = 32;
/// Most `and`/`or` joins in one condition.
pub const MAX_JOINS: u32 = 256;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Field {
    Decision,
    Status,
    Summary,
    Metric(String),
    Artifacts,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expr {
    Path { stage: String, field: Field },
    Str(String),
    Num(f64),
    Bool(bool),
    List(Vec<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Box<Expr>, Op, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Contains,
}

/// A value an expression evaluates to.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Str(String),
    Num(f64),
    Bool(bool),
    List(Vec<String>),
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Str(s) => !s.is_empty(),
            Value::Num(n) => *n != 0.0,
            Value::List(l) => !l.is_empty(),
        }
    }
}

/// What a condition can read about a finished stage.
pub trait Facts {
    fn get(&self, stage: &str, field: &Field) -> Value;
}

/// A parse error with the byte offset in the expression where it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64),
    Op(Op),
    Dot,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    And,
    Or,
    Not,
    True,
    False,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |offset, message: &str| ParseError {
        offset,
        message: message.to_string(),
    };
    while i < chars.len() {
        let (at, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '.' => {
                out.push((at, Token::Dot));
                i += 1;
            }
            ',' => {
                out.push((at, Token::Comma));
                i += 1;
            }
            '(' => {
                out.push((at, Token::LParen));
                i += 1;
            }
            ')' => {
                out.push((at, Token::RParen));
                i += 1;
            }
            '[' => {
                out.push((at, Token::LBracket));
                i += 1;
            }
            ']' => {
                out.push((at, Token::RBracket));
                i += 1;
            }
            '\'' | '"' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(at, "unterminated string")),
                        Some(&(_, c)) if c == quote => break,
                        Some(&(_, c)) => s.push(c),
                    }
                    i += 1;
                }
                i += 1;
                out.push((at, Token::Str(s)));
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).map(|&(_, c)| c);
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => (Op::Eq, 2),
                    ('!', Some('=')) => (Op::Ne, 2),
                    ('<', Some('=')) => (Op::Le, 2),
                    ('>', Some('=')) => (Op::Ge, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', _) => (Op::Gt, 1),
                    _ => return Err(err(at, "expected ==, !=, <, <=, > or >=")),
                };
                out.push((at, Token::Op(op)));
                i += len;
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|&(_, c)| c.is_ascii_digit() || c == '.')
                {
                    i += 1;
                }
                let s: String = chars[start..i].iter().map(|&(_, c)| c).collect();
                let n = s.parse().map_err(|_| err(at, "invalid number"))?;
                out.push((at, Token::Num(n)));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|&(_, c)| c.is_alphanumeric() || c == '_' || c == '-')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().map(|&(_, c)| c).collect();
                let token = match word.as_str() {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "not" => Token::Not,
                    "in" => Token::Op(Op::In),
                    "contains" => Token::Op(Op::Contains),
                    "true" => Token::True,
                    "false" => Token::False,
                    _ => Token::Ident(word),
                };
                out.push((at, token));
            }
            _ => return Err(err(at, &format!("unexpected character '{c}'"))),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    end: usize,
    /// Parentheses, `not`s and lists open around the current token.
    depth: u32,
    joins: u32,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(o, _)| *o)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            offset: self.offset(),
            message: message.into(),
        })
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// One more level of nesting, opened by the token just taken; refused
    /// past [`MAX_NESTING`], at that token.
    fn nest(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(ParseError {
                offset: self.tokens[self.pos - 1].0,
                message: format!(
                    "the condition nests more than {MAX_NESTING} levels of parentheses, `not`s or lists"
                ),
            });
        }
        Ok(())
    }

    fn join(&mut self) -> Result<(), ParseError> {
        self.joins += 1;
        if self.joins > MAX_JOINS {
            return Err(ParseError {
                offset: self.tokens[self.pos - 1].0,
                message: format!("the condition joins more than {MAX_JOINS} terms with `and`/`or`"),
            });
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.eat(&Token::Or) {
            self.join()?;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while self.eat(&Token::And) {
            self.join()?;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.eat(&Token::Not) {
            self.nest()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, ParseError> {
        let left = self.value()?;
        if let Some(Token::Op(op)) = self.peek().cloned() {
            let at = self.offset();
            self.pos += 1;
            let right = self.value()?;
            if op == Op::In && !matches!(right, Expr::List(_)) {
                return self.error("`in` needs a list, e.g. ['LOW', 'MEDIUM']");
            }
            if let Some(why) = never_holds(&left, op, &right) {
                return Err(ParseError {
                    offset: at,
                    message: why,
                });
            }
            return Ok(Expr::Compare(Box::new(left), op, Box::new(right)));
        }
        Ok(left)
    }

    fn value(&mut self) -> Result<Expr, ParseError> {
        let Some(token) = self.peek().cloned() else {
            return self.error("expected a value, found the end");
        };
        self.pos += 1;
        match token {
            Token::Str(s) => Ok(Expr::Str(s)),
            Token::Num(n) => Ok(Expr::Num(n)),
            Token::True => Ok(Expr::Bool(true)),
            Token::False => Ok(Expr::Bool(false)),
            Token::LParen => {
                self.nest()?;
                let e = self.or()?;
                if !self.eat(&Token::RParen) {
                    return self.error("expected ')'");
                }
                self.depth -= 1;
                Ok(e)
            }
            Token::LBracket => {
                self.nest()?;
                let mut items = Vec::new();
                if !self.eat(&Token::RBracket) {
                    loop {
                        items.push(self.value()?);
                        if self.eat(&Token::RBracket) {
                            break;
                        }
                        if !self.eat(&Token::Comma) {
                            return self.error("expected ',' or ']'");
                        }
                    }
                }
                self.depth -= 1;
                Ok(Expr::List(items))
            }
            Token::Ident(stage) => self.path(stage),
            _ => {
                self.pos -= 1;
                self.error("expected a value: STAGE.FIELD, 'text', a number, true or false")
            }
        }
    }

    fn path(&mut self, stage: String) -> Result<Expr, ParseError> {
        if !self.eat(&Token::Dot) {
            return self.error(format!(
                "expected '.' after '{stage}' (e.g. {stage}.decision); quote text as 'text'"
            ));
        }
        let field = match self.peek().cloned() {
            Some(Token::Ident(f)) => {
                self.pos += 1;
                f
            }
            _ => return self.error("expected a field name"),
        };
        let field = match field.as_str() {
            "decision" => Field::Decision,
            "status" => Field::Status,
            "summary" => Field::Summary,
            "artifacts" => Field::Artifacts,
            "changed" => Field::Changed,
            "metrics" => {
                if !self.eat(&Token::Dot) {
                    return self.error("expected '.NAME' after metrics");
                }
                match self.peek().cloned() {
                    Some(Token::Ident(name)) => {
                        self.pos += 1;
                        Field::Metric(name)
                    }
                    _ => return self.error("expected a metric name"),
                }
            }
            other => {
                self.pos -= 1;
                return self.error(format!(
                    "unknown field '{other}' (decision, status, summary, metrics.NAME, artifacts, changed)"
                ));
            }
        };
        Ok(Expr::Path { stage, field })
    }
}

/// What an operand is, as far as the text shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Bool,
    List,
}

impl Kind {
    fn of(e: &Expr) -> Kind {
        match e {
            Expr::Path { field, .. } => match field {
                Field::Decision | Field::Status | Field::Summary => Kind::Text,
                Field::Metric(_) => Kind::Number,
                Field::Artifacts | Field::Changed => Kind::List,
            },
            Expr::Str(_) => Kind::Text,
            Expr::Num(_) => Kind::Number,
            Expr::List(_) => Kind::List,
            Expr::Bool(_) | Expr::Not(_) | Expr::And(..) | Expr::Or(..) | Expr::Compare(..) => {
                Kind::Bool
            }
        }
    }

    fn words(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Number => "a number",
            Kind::Bool => "true or false",
            Kind::List => "a list",
        }
    }
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "==",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::In => "in",
        Op::Contains => "contains",
    }
}

/// Why `left op right` can never hold (or never fail), whatever the stages
/// produce: a comparison of things of different kinds.
fn never_holds(left: &Expr, op: Op, right: &Expr) -> Option<String> {
    let (l, r) = (Kind::of(left), Kind::of(right));
    let sym = op_text(op);
    let fits = match op {
        Op::Lt | Op::Le | Op::Gt | Op::Ge => l == Kind::Number && r == Kind::Number,
        Op::Eq | Op::Ne => l == r,
        Op::In => matches!(l, Kind::Text | Kind::Number) && r == Kind::List,
        Op::Contains => matches!(l, Kind::List | Kind::Text) && r == Kind::Text,
    };
    (!fits).then(|| {
        let always = if op == Op::Ne { "always true" } else { "never true" };
        format!(
            "`{sym}` here compares {} with {}: it is {always} (metrics are numbers; decision, status and summary are text; artifacts and changed are lists)",
            l.words(),
            r.words()
        )
    })
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr, ParseError> {
        if text.len() > MAX_CONDITION_BYTES {
            return Err(ParseError {
                offset: 0,
                message: format!(
                    "the condition is {} bytes; at most {MAX_CONDITION_BYTES} are read",
                    text.len()
                ),
            });
        }
        let tokens = tokenize(text)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            end: text.len(),
            depth: 0,
            joins: 0,
        };
        let e = p.or()?;
        if p.pos < p.tokens.len() {
            return p.error("unexpected text after the condition");
        }
        Ok(e)
    }

    /// Stages the expression reads.
    pub fn stages(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit(&mut |e| {
            if let Expr::Path { stage, .. } = e {
                out.push(stage.as_str());
            }
        });
        out
    }

    fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Not(e) => e.visit(f),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(a, _, b) => {
                a.visit(f);
                b.visit(f);
            }
            Expr::List(items) => items.iter().for_each(|i| i.visit(f)),
            _ => {}
        }
    }

    pub fn eval(&self, facts: &dyn Facts) -> Value {
        match self {
            Expr::Path { stage, field } => facts.get(stage, field),
            Expr::Str(s) => Value::Str(s.clone()),
            Expr::Num(n) => Value::Num(*n),
            Expr::Bool(b) => Value::Bool(*b),
            Expr::List(items) => Value::List(
                items
                    .iter()
                    .map(|i| match i.eval(facts) {
                        Value::Str(s) => s,
                        Value::Num(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => String::new(),
                    })
                    .collect(),
            ),
            Expr::Not(e) => Value::Bool(!e.eval(facts).truthy()),
            Expr::And(a, b) => Value::Bool(a.eval(facts).truthy() && b.eval(facts).truthy()),
            Expr::Or(a, b) => Value::Bool(a.eval(facts).truthy() || b.eval(facts).truthy()),
            Expr::Compare(a, op, b) => Value::Bool(compare(&a.eval(facts), *op, &b.eval(facts))),
        }
    }

    pub fn holds(&self, facts: &dyn Facts) -> bool {
        self.eval(facts).truthy()
    }
}

fn compare(a: &Value, op: Op, b: &Value) -> bool {
    match op {
        Op::Eq => a == b,
        Op::Ne => a != b,
        Op::In => match (a, b) {
            (Value::Str(s), Value::List(l)) => l.contains(s),
            (Value::Num(n), Value::List(l)) => l.contains(&n.to_string()),
            _ => false,
        },
        Op::Contains => match (a, b) {
            (Value::List(l), Value::Str(s)) => l.iter().any(|e| e.starts_with(s.as_str())),
            (Value::Str(hay), Value::Str(needle)) => hay.contains(needle.as_str()),
            _ => false,
        },
        Op::Lt | Op::Le | Op::Gt | Op::Ge => match (a, b) {
            (Value::Num(x), Value::Num(y)) => match op {
                Op::Lt => x < y,
                Op::Le => x <= y,
                Op::Gt => x > y,
                _ => x >= y,
            },
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<(String, String), Value>);

    impl Facts for Map {
        fn get(&self, stage: &str, field: &Field) -> Value {
            let key = match field {
                Field::Metric(m) => format!("metrics.{m}"),
                other => format!("{other:?}").to_lowercase(),
            };
            self.0
                .get(&(stage.to_string(), key))
                .cloned()
                .unwrap_or(Value::Null)
        }
    }

    fn facts() -> Map {
        let mut m = HashMap::new();
        m.insert(
            ("triage".into(), "decision".into()),
            Value::Str("HIGH".into()),
        );
        m.insert(("review".into(), "metrics.score".into()), Value::Num(0.7));
        m.insert(
            ("exec".into(), "changed".into()),
            Value::List(vec!["src/a.rs".into(), "docs/guide.md".into()]),
        );
        Map(m)
    }

    fn holds(text: &str) -> bool {
        Expr::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e:?}"))
            .holds(&facts())
    }

    #[test]
    fn evaluates_routing_conditions() {
        assert!(holds("triage.decision == 'HIGH'"));
        assert!(!holds("triage.decision == \"LOW\""));
        assert!(holds("triage.decision in ['MEDIUM', 'HIGH']"));
        assert!(holds("not triage.decision in ['LOW']"));
        assert!(holds(
            "review.metrics.score >= 0.5 and review.metrics.score < 1"
        ));
        assert!(holds("exec.changed contains 'docs/'"));
        assert!(!holds("exec.changed contains 'tests/'"));
        assert!(holds(
            "(triage.decision == 'LOW' or review.metrics.score > 0.6)"
        ));
        // Missing values are null: never greater, never equal to text.
        assert!(!holds("review.metrics.missing > 0"));
        assert!(!holds("triage.summary == 'x'"));
        assert!(holds("triage.summary != 'x'"));
    }

    #[test]
    fn lists_the_stages_it_reads() {
        let e = Expr::parse("triage.decision == 'HIGH' or review.metrics.score > 0.5").unwrap();
        assert_eq!(e.stages(), vec!["triage", "review"]);
    }

    #[test]
    fn mistakes_have_offsets() {
        let e = Expr::parse("triage.decison == 'HIGH'").unwrap_err();
        assert_eq!(e.offset, 7);
        assert!(e.message.contains("unknown field 'decison'"));
        let e = Expr::parse("triage.decision == HIGH").unwrap_err();
        assert!(e.message.contains("quote text"), "{e:?}");
        let e = Expr::parse("triage.decision in 'HIGH'").unwrap_err();
        assert!(e.message.contains("needs a list"));
        assert!(Expr::parse("triage.decision == 'x' )").is_err());
        assert!(Expr::parse("'unterminated").is_err());
    }

    #[test]
    fn comparisons_that_can_never_hold_are_refused() {
        let e = Expr::parse("a.metrics.score > 'high'").unwrap_err();
        assert_eq!(e.offset, 16);
        assert!(e.message.contains("compares a number with text"), "{e:?}");
        let e = Expr::parse("a.decision == 3").unwrap_err();
        assert!(e.message.contains("never true"), "{e:?}");
        let e = Expr::parse("a.decision != 3").unwrap_err();
        assert!(e.message.contains("always true"), "{e:?}");
        assert!(Expr::parse("a.changed > 1").is_err());
        assert!(Expr::parse("a.metrics.n contains 'x'").is_err());
        for fine in [
            "a.metrics.score >= 0.5",
            "a.decision in ['x']",
            "a.summary contains 'ok'",
            "a.changed contains 'src/'",
            "(a.status == 'x') == true",
            "a.metrics.n == 1",
        ] {
            assert!(Expr::parse(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn deep_or_long_conditions_are_refused_before_they_can_overflow_a_stack() {
        let parens = format!("{}a.status{}", "(".repeat(2000), ")".repeat(2000));
        let e = Expr::parse(&parens).unwrap_err();
        assert!(e.message.contains("more than 32 levels"), "{e:?}");
        assert_eq!(e.offset, 32, "at the first paren too many");
        let nots = format!("{}a.status", "not ".repeat(1000));
        assert!(
            Expr::parse(&nots)
                .unwrap_err()
                .message
                .contains("32 levels")
        );
        let ors = vec!["a.status"; 300].join(" or ");
        let e = Expr::parse(&ors).unwrap_err();
        assert!(e.message.contains("more than 256 terms"), "{e:?}");
        let huge = vec!["a.status"; 20_000].join(" or ");
        let e = Expr::parse(&huge).unwrap_err();
        assert!(e.message.contains("at most 4096"), "{e:?}");
        // Within the bounds, it parses, evaluates and drops.
        let deep = format!("{}a.status == 'x'{}", "(".repeat(31), ")".repeat(31));
        assert!(!Expr::parse(&deep).unwrap().holds(&facts()));
        let wide = vec!["a.status == 'x'"; 200].join(" or ");
        assert!(!Expr::parse(&wide).unwrap().holds(&facts()));
    }
}
