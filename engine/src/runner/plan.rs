//! Step bodies without templates, read into their typed form once per scenario run
//! instead of at every execution: inside `each`, and in every load iteration, the same
//! `send` and `expect` run again and again, and cloning, rendering and deserializing
//! their bodies would cost more than the steps' own work.
//!
//! Plans are keyed by the address of the step body: they hold for the steps of the one
//! scenario their [`ScenarioRun`](super::scenario::ScenarioRun) keeps alive for as long
//! as the plans live, and for the library steps it calls (its steps hold them). The
//! typed plans of `send` and `expect` are made for the scenario's own steps only; the
//! render plans of templated bodies ([`RenderPlan`]) for library steps' too.

use std::sync::{Arc, RwLock};

use rustc_hash::FxHashMap;

use serde_json::Value;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::spec::model::{EventPattern, ExpectStep};
use crate::template::RenderPlan;

/// The plans of one scenario's steps, by kind.
#[derive(Default)]
pub struct StepPlans {
    pub sends: Plans<SendPlan>,
    pub expects: Plans<ExpectPlan>,
    /// The bodies that have templates, ready to render (see [`RenderPlan`]).
    pub renders: Plans<RenderPlan<'static>>,
    /// Templated `expect`s read without their `match` and `on`, when those alone have
    /// templates (`None`: another field has some).
    pub expect_skeletons: Plans<Option<ExpectPlan>>,
}

/// A `send` without templates: what it sends, and how many times.
pub struct SendPlan {
    pub outgoing: Outgoing,
    pub repeat: u64,
}

/// What a `send` sends: on which connection, and the frame.
pub struct Outgoing {
    pub on: Option<String>,
    pub frame: OutgoingFrame,
}

pub enum OutgoingFrame {
    /// Shared with the frame sent, not copied at every send.
    Text(Utf8Bytes),
    Binary(Vec<u8>),
}

/// An `expect` read into its typed form, with a generated sequence's item kept apart
/// (it is rendered per value) and its single-event pattern.
#[derive(Clone)]
pub struct ExpectPlan {
    /// The step, without the fields of its single-event pattern (moved to `single`).
    pub step: ExpectStep,
    pub item: Option<Value>,
    pub single: EventPattern,
}

/// Plans of one kind, by step body.
pub struct Plans<T> {
    /// `None`: the body has templates, so it is rendered at every execution. Keys are
    /// addresses, hashed at every step: SipHash would cost more than the lookup saves.
    by_body: RwLock<FxHashMap<usize, Option<Arc<T>>>>,
}

impl<T> Default for Plans<T> {
    fn default() -> Self {
        Self {
            by_body: RwLock::default(),
        }
    }
}

impl<T> Plans<T> {
    /// The plan of `body`, made by `make` the first time; `None` when the body has
    /// templates. Errors are not kept: a bad body fails every time it runs.
    pub fn get<E>(
        &self,
        body: &Value,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<Option<Arc<T>>, E> {
        if let Some(known) = self.known(body) {
            return Ok(known);
        }
        let plan = if crate::template::contains_template(body) {
            None
        } else {
            Some(Arc::new(make()?))
        };
        self.keep(body, plan.clone());
        Ok(plan)
    }

    /// The plan of `body`, made by `make` the first time, templates or not.
    pub fn get_any<E>(
        &self,
        body: &Value,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        if let Some(Some(known)) = self.known(body) {
            return Ok(known);
        }
        let plan = Arc::new(make()?);
        self.keep(body, Some(plan.clone()));
        Ok(plan)
    }

    fn known(&self, body: &Value) -> Option<Option<Arc<T>>> {
        let plans = crate::sync::read(&self.by_body);
        plans.get(&address(body)).cloned()
    }

    fn keep(&self, body: &Value, plan: Option<Arc<T>>) {
        let mut plans = crate::sync::write(&self.by_body);
        plans.insert(address(body), plan);
    }
}

fn address(body: &Value) -> usize {
    body as *const Value as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_planned_once_and_templated_bodies_are_not() {
        let plans: Plans<String> = Plans::default();
        let plain = serde_json::json!({"json": {"type": "ping"}});
        let templated = serde_json::json!({"json": {"id": "{{ ids.a }}"}});
        let mut made = 0;
        let mut make = |ok: bool| {
            made += 1;
            if ok {
                Ok("plan".to_string())
            } else {
                Err("bad")
            }
        };
        assert_eq!(plans.get(&plain, || make(false)), Err("bad"));
        assert_eq!(
            plans.get(&plain, || make(true)).unwrap().as_deref(),
            Some(&"plan".to_string())
        );
        assert!(plans.get(&plain, || make(true)).unwrap().is_some());
        assert!(plans.get(&templated, || make(true)).unwrap().is_none());
        assert_eq!(made, 2);
    }
}
