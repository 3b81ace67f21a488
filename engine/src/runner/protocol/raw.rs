//! Raw frames (the default protocol): each frame is one message, JSON when it parses,
//! its event type read from the suite's type field.

use std::any::Any;

use serde_json::Value;

use super::{skim, Decoded, Incoming, Json, Message, Protocol, ProtocolKind};
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
        let (json, event_type) = if not_json {
            (Json::Absent, None)
        } else if self.schemas {
            match serde_json::from_str::<Value>(&frame.text) {
                Ok(json) => {
                    let event_type = field(&json, &self.type_path)
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    (Json::Parsed(json), event_type)
                }
                Err(_) => (Json::Absent, None),
            }
        } else {
            match skim::string_at(&frame.text, &self.type_path) {
                Ok(event_type) => (Json::InText, event_type),
                Err(_) => (Json::Absent, None),
            }
        };
        Decoded::message(Message {
            text: frame.text,
            json,
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
