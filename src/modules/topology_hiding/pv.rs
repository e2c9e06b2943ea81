//! `$TH_callee_callid` (OpenSIPS 3.4 topology_hiding.c
//! `pv_topo_callee_callid`): the Call-ID the callee sees, for a dialog
//! hidden with flag `C`; null otherwise.

use crate::modules::dialog::machine::CallDlg;
use crate::modules::dialog::store::lock;
use crate::proxy::context::Call;
use crate::pv::{PvDef, Spec, Value};

fn callee_callid(c: &Call, _: &Spec) -> Value {
    let Some(d) = c.slot_ref::<CallDlg>().and_then(|s| s.dlg.clone()) else {
        return Value::Null;
    };
    let d = lock(&d);
    let bits = d.mod_flags;
    let hidden = bits & super::logic::ONGOING != 0 && super::logic::Flags::from_bits(bits).hide_callid;
    if hidden {
        Value::Str(super::callid::encode(&d.callid))
    } else {
        Value::Null
    }
}

pub static PVS: &[PvDef] = &[PvDef::ro(
    "TH_callee_callid",
    callee_callid,
    "The Call-ID the callee sees for the current dialog when it is hidden with flag `C`; null otherwise.",
)];
