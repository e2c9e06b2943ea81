//! Choosing the response a proxy forwards when every branch has answered
//! (RFC 3261 §16.7 step 6).

/// How good a final response is for the caller: lower is better.
/// 6xx ends the search at once (§16.7 step 5); otherwise the lowest class
/// wins (3xx before 4xx before 5xx); within 4xx, a challenge (401/407) is
/// preferred so authentication can go on, as OpenSIPS does.
fn rank(code: u16) -> (u16, u16) {
    let class = code / 100;
    let within = match code {
        401 | 407 => 0,
        // 503 from a downstream element says nothing about us (§16.7 step 6).
        503 => 2,
        _ => 1,
    };
    (class, within)
}

/// Index of the best final response among `codes` (all >= 300), or None
/// when there is none.
pub fn best_response(codes: &[u16]) -> Option<usize> {
    if let Some(i) = codes.iter().position(|c| (600..700).contains(c)) {
        return Some(i);
    }
    codes
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| rank(**c))
        .map(|(i, _)| i)
}

/// The code the proxy sends for a chosen response: a 503 becomes 500
/// (RFC 3261 §16.7 step 6), everything else passes.
pub fn forwarded_code(code: u16) -> u16 {
    if code == 503 {
        500
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_class_wins_and_6xx_beats_all() {
        assert_eq!(best_response(&[486, 302, 500]), Some(1));
        assert_eq!(best_response(&[486, 603, 302]), Some(1));
        assert_eq!(best_response(&[500, 404]), Some(1));
        assert_eq!(best_response(&[404, 407, 486]), Some(1));
        assert_eq!(best_response(&[503, 500]), Some(1));
        assert_eq!(best_response(&[]), None);
        assert_eq!(forwarded_code(503), 500);
        assert_eq!(forwarded_code(486), 486);
    }
}
