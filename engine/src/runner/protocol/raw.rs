//! Raw frames (the default protocol): each frame is one message, JSON when it parses,
//! its event type read from the suite's type field.

use std::any::Any;

use serde_json::Value;

use super::{skim, Decoded, Incoming, Message, Protocol, ProtocolKind};
use crate::runner::resources::field;
use crate::runner::ws::FrameRules;

pub struct Raw {
    /// The type field's keys, outermost first (`data.type`: `data`, then `type`).
    type_path: Vec<String>,
    /// Binary frames carry JSON (`connect.binary_json`).
    binary_json: bool,
    /// Event schemas are checked: messages need their schema type.
    schemas: bool,
}

impl Raw {
    pub fn new(rules: &FrameRules) -> Self {
        Raw {
            type_path: rules.type_field.split('.').map(str::to_string).collect(),
            binary_json: rules.binary_json,
            schemas: rules.schemas.is_some(),
        }
    }
}

impl Protocol for Raw {
    fn kind(&self) -> ProtocolKind {
        ProtocolKind::Raw
    }

    fn decode(&mut self, frame: Incoming) -> Decoded {
        let not_json = frame.binary && !self.binary_json;
        // Checking a schema needs the document; otherwise a skim for the type will do.
        let (json, event_type, json_in_text) = if not_json {
            (None, None, false)
        } else if self.schemas {
            let json: Option<Value> = serde_json::from_str(&frame.text).ok();
            let event_type = json
                .as_ref()
                .and_then(|j| field(j, &self.type_path))
                .and_then(Value::as_str)
                .map(str::to_string);
            (json, event_type, false)
        } else {
            match skim::string_at(&frame.text, &self.type_path) {
                Ok(event_type) => (None, event_type, true),
                Err(_) => (None, None, false),
            }
        };
        Decoded::message(Message {
            text: frame.text,
            json,
            json_in_text,
            schema_type: self.schemas.then(|| event_type.clone()).flatten(),
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
