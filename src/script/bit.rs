//! `sip.bit`: OpenSIPS's bitwise script operators (`&`, `|`, `^`, `~`,
//! `<<`, `>>`) as functions, since Lua 5.1 / LuaJIT code cannot write
//! them as operators, and its `int` division and remainder (`/`, `%`:
//! Lua's divide into fractions and floor the remainder). Semantics of OpenSIPS route.c `eval_elem`: numbers
//! are C `int` (32-bit, two's complement), a null right operand is 0, a
//! null left operand gives no value (nil), and `&`, `|`, `^` of two
//! strings of one length work byte by byte.

use mlua::{Lua, Table, Value};

use super::host::located;

/// An operand: None for nil, else a number or the bytes of a string that
/// is not a number.
enum Operand {
    Int(i32),
    Bytes(Vec<u8>),
}

fn operand(lua: &Lua, f: &str, v: &Value) -> mlua::Result<Option<Operand>> {
    Ok(Some(match v {
        Value::Nil => return Ok(None),
        // OpenSIPS's `int`: wider Lua integers wrap as C would.
        Value::Integer(i) => Operand::Int(*i as i32),
        Value::Number(n) if n.is_finite() => Operand::Int(*n as i64 as i32),
        Value::Boolean(b) => Operand::Int(*b as i32),
        Value::String(s) => {
            let b = s.as_bytes();
            match std::str::from_utf8(&b)
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
            {
                Some(n) => Operand::Int(n as i32),
                None => Operand::Bytes(b.to_vec()),
            }
        }
        other => {
            return Err(located(
                lua,
                format!(
                    "sip.bit.{f}: a number or string is needed, not {}",
                    other.type_name()
                ),
            ))
        }
    }))
}

/// `a op b` for `band`/`bor`/`bxor` (strings allowed) and the shifts.
fn binary(
    lua: &Lua,
    f: &str,
    a: &Value,
    b: &Value,
    int_op: fn(i32, i32) -> i32,
    byte_op: Option<fn(u8, u8) -> u8>,
) -> mlua::Result<Value> {
    let Some(a) = operand(lua, f, a)? else {
        return Ok(Value::Nil);
    };
    let b = operand(lua, f, b)?.unwrap_or(Operand::Int(0));
    match (a, b, byte_op) {
        (Operand::Int(x), Operand::Int(y), _) => Ok(Value::Integer(int_op(x, y) as i64)),
        (Operand::Bytes(x), Operand::Bytes(y), Some(op)) => {
            if x.len() != y.len() {
                return Err(located(
                    lua,
                    format!(
                        "sip.bit.{f}: strings of different lengths ({} and {})",
                        x.len(),
                        y.len()
                    ),
                ));
            }
            let out: Vec<u8> = x.iter().zip(&y).map(|(p, q)| op(*p, *q)).collect();
            Ok(Value::String(lua.create_string(&out)?))
        }
        _ => Err(located(
            lua,
            format!(
                "sip.bit.{f}: operands must both be numbers{}",
                match byte_op {
                    Some(_) => " or both strings",
                    None => "",
                }
            ),
        )),
    }
}

/// Shift counts as C on x86 uses them for a 32-bit `int` (the count's
/// low five bits); OpenSIPS leaves larger counts to the compiler.
fn shl(a: i32, n: i32) -> i32 {
    a.wrapping_shl(n as u32)
}

/// `>>` of a signed `int`: arithmetic (the sign is kept).
fn shr(a: i32, n: i32) -> i32 {
    a.wrapping_shr(n as u32)
}

/// `a / b` or `a % b` of OpenSIPS's `int`s (route.c `eval_expr`: C's
/// truncating division, a nil right operand is 0, and a zero divisor is
/// logged, "divide by 0", and gives no value).
fn divide(lua: &Lua, f: &str, a: &Value, b: &Value, rem: bool) -> mlua::Result<Value> {
    let Some(a) = operand(lua, f, a)? else {
        return Ok(Value::Nil);
    };
    let b = operand(lua, f, b)?.unwrap_or(Operand::Int(0));
    let (Operand::Int(x), Operand::Int(y)) = (a, b) else {
        return Err(located(
            lua,
            format!("sip.bit.{f}: operands must both be numbers"),
        ));
    };
    if y == 0 {
        tracing::error!("sip.bit.{f}: divide by 0");
        return Ok(Value::Nil);
    }
    let v = if rem {
        x.wrapping_rem(y)
    } else {
        x.wrapping_div(y)
    };
    Ok(Value::Integer(v as i64))
}

/// Registers `sip.bit` on the `sip` table.
pub fn register(lua: &Lua, sip: &Table) -> mlua::Result<()> {
    let bit = lua.create_table()?;
    bit.set(
        "band",
        lua.create_function(|lua, (a, b): (Value, Value)| {
            binary(lua, "band", &a, &b, |x, y| x & y, Some(|x, y| x & y))
        })?,
    )?;
    bit.set(
        "bor",
        lua.create_function(|lua, (a, b): (Value, Value)| {
            binary(lua, "bor", &a, &b, |x, y| x | y, Some(|x, y| x | y))
        })?,
    )?;
    bit.set(
        "bxor",
        lua.create_function(|lua, (a, b): (Value, Value)| {
            binary(lua, "bxor", &a, &b, |x, y| x ^ y, Some(|x, y| x ^ y))
        })?,
    )?;
    bit.set(
        "lshift",
        lua.create_function(|lua, (a, b): (Value, Value)| {
            binary(lua, "lshift", &a, &b, shl, None)
        })?,
    )?;
    bit.set(
        "rshift",
        lua.create_function(|lua, (a, b): (Value, Value)| {
            binary(lua, "rshift", &a, &b, shr, None)
        })?,
    )?;
    bit.set(
        "bnot",
        lua.create_function(|lua, a: Value| match operand(lua, "bnot", &a)? {
            None => Ok(Value::Nil),
            Some(Operand::Int(x)) => Ok(Value::Integer(!x as i64)),
            Some(Operand::Bytes(_)) => Err(located(
                lua,
                "sip.bit.bnot: a number is needed (OpenSIPS: binary NOT on non-numeric value)"
                    .into(),
            )),
        })?,
    )?;
    bit.set(
        "div",
        lua.create_function(|lua, (a, b): (Value, Value)| divide(lua, "div", &a, &b, false))?,
    )?;
    bit.set(
        "mod",
        lua.create_function(|lua, (a, b): (Value, Value)| divide(lua, "mod", &a, &b, true))?,
    )?;
    sip.set("bit", bit)
}
