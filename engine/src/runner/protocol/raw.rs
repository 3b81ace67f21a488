//! Raw frames (the default protocol): each frame is one message, JSON when it parses,
//! its event type read from the suite's type field.

use std::any::Any;

use serde_json::Value;

use super::{Decoded, Incoming, Message, Protocol, ProtocolKind};
use crate::runner::resources::field;
use crate::runner::ws::FrameRules;

pub struct Raw {
    type_field: String,
    /// Binary frames carry JSON (`connect.binary_json`).
    binary_json: bool,
}

impl Raw {
    pub fn new(rules: &FrameRules) -> Self {
        Raw {
            type_field: rules.type_field.clone(),
            binary_json: rules.binary_json,
        }
    }
}

impl Protocol for Raw {
    fn kind(&self) -> ProtocolKind {
        ProtocolKind::Raw
    }

    fn decode(&mut self, frame: Incoming) -> Decoded {
        let json: Option<Value> = if frame.binary && !self.binary_json {
            None
        } else {
            serde_json::from_str(&frame.text).ok()
        };
        let event_type = json
            .as_ref()
            .and_then(|j| field(j, &self.type_field))
            .and_then(Value::as_str)
            .map(str::to_string);
        Decoded::message(Message {
            text: frame.text,
            json,
            schema_type: event_type.clone(),
            event_type,
            operation: None,
            ends_operation: false,
            raw: None,
            binary: frame.binary,
            ack_wanted: None,
            ack_of_emit: None,
        })
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
