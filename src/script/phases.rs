//! The Lua host as the proxy sees it: [`Phases`] implemented by running
//! the script's route functions.

use mlua::{Function, Value};
use std::rc::Rc;

use super::host::Host;
use super::route::RouteType;
use crate::proxy::context::Current;
use crate::proxy::phases::{Outcome, ParseFailure, Phases, Started};

impl Host {
    /// Runs `table[name]` if the script defines it.
    fn run_named(&self, t: RouteType, name: &str) -> Option<Outcome> {
        let f = self.route(t, name)?;
        Some(self.invoke(&f))
    }

    /// Starts `f` as a coroutine that may suspend.
    fn started(&self, f: &Function) -> Started {
        self.started_with(f, Value::Nil)
    }

    /// [`Self::started`] with an argument (event routes get a table).
    fn started_with(&self, f: &Function, arg: Value) -> Started {
        match self.run_now(f, arg) {
            Ok(o) => Started::Ended(o),
            Err(run) => Started::Waiting(Box::pin(run)),
        }
    }
}

impl Phases for Host {
    fn current(&self) -> &Current {
        &self.state.cur
    }

    fn request(&self) -> Started {
        match &self.routes.main {
            Some(f) => self.started(f),
            None => Started::Ended(Outcome::Done),
        }
    }

    fn error(&self, why: &ParseFailure) -> Option<Outcome> {
        let f = self.routes.error.as_ref()?;
        let args = self.lua.create_table().and_then(|t| {
            t.set("class", why.class)?;
            t.set("reason", why.reason.as_str())?;
            t.set("code", why.code)?;
            t.set("reply", why.reply.as_str())?;
            Ok(t)
        });
        Some(match args {
            Ok(t) => self.invoke_with(f, t),
            Err(e) => Outcome::Failed(super::host::describe(&e)),
        })
    }

    fn reply(&self, name: Option<&str>) -> Outcome {
        match name {
            // The cached function, not a fresh reference per reply.
            None => self.routes.reply.as_ref().map(|f| self.invoke(f)),
            Some(n) => self.run_named(RouteType::OnReply, n),
        }
        .unwrap_or(Outcome::Done)
    }

    fn failure(&self, name: &str) -> Option<Started> {
        let f = self.route(RouteType::Failure, name)?;
        Some(self.started(&f))
    }

    fn branch(&self, name: &str) -> Outcome {
        self.run_named(RouteType::Branch, name)
            .unwrap_or(Outcome::Done)
    }

    fn local(&self) -> Outcome {
        self.run_named(RouteType::Local, "main")
            .unwrap_or(Outcome::Done)
    }

    fn startup(&self) -> Option<Outcome> {
        self.run_named(RouteType::Startup, "main")
    }

    fn timer(&self, name: &str) -> Option<Started> {
        let f = self
            .timer_routes()
            .into_iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, f)| f)?;
        Some(self.started(&f))
    }

    fn timers(&self) -> Vec<(String, std::time::Duration)> {
        self.timer_routes()
            .into_iter()
            .map(|(n, every, _)| (n, every))
            .collect()
    }

    fn detached_route(&self, name: &str) -> Option<Started> {
        let f = self.route(RouteType::Request, name)?;
        Some(self.started(&f))
    }

    fn event(
        &self,
        name: &str,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<Started> {
        let f = self.route(RouteType::Event, name)?;
        let args = self.lua.create_table().and_then(|t| {
            for (k, v) in params {
                match v {
                    serde_json::Value::String(s) => t.set(k.as_str(), s.as_str())?,
                    serde_json::Value::Bool(b) => t.set(k.as_str(), *b)?,
                    serde_json::Value::Number(n) => match n.as_i64() {
                        Some(i) => t.set(k.as_str(), i)?,
                        None => t.set(k.as_str(), n.as_f64().unwrap_or(0.0))?,
                    },
                    other => t.set(k.as_str(), other.to_string())?,
                }
            }
            Ok(t)
        });
        Some(match args {
            Ok(t) => self.started_with(&f, Value::Table(t)),
            Err(e) => Started::Ended(Outcome::Failed(super::host::describe(&e))),
        })
    }
}

/// The host behind a worker's state, for module functions that must run
/// other routes (tm's branch routes from `t_relay`).
pub fn phases_of(st: &super::host::State) -> Option<Rc<Host>> {
    st.host.borrow().upgrade()
}
