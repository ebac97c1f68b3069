//! Runs the ECS program on EVE lines with the `vrl` crate, the way Vector's remap transform
//! runs it: the program is compiled once, each line arrives as the file source's `message`,
//! and the runtime state is cleared between events.

use std::collections::BTreeMap;

use bytes::Bytes;
use vrl::compiler::state::RuntimeState;
use vrl::compiler::{Context, Program, TargetValue, TimeZone};
use vrl::diagnostic::Formatter;
use vrl::value::{Secrets, Value};

use super::program::{ecs_program, ProgramVars, ECS_VRL_TEMPLATE};
use super::EcsError;
use crate::config::Settings;

/// A compiled ECS program, ready to map one EVE line after another.
pub struct Mapper {
    program: Program,
    state: RuntimeState,
    timezone: TimeZone,
}

impl Mapper {
    /// Compiles the program rendered for these settings.
    pub fn new(settings: &Settings) -> Result<Self, EcsError> {
        Self::from_source(&ecs_program(settings)?)
    }

    /// Compiles the shipped template rendered with explicit variables (sensor identity).
    pub fn from_vars(vars: &ProgramVars) -> Result<Self, EcsError> {
        Self::from_source(&vars.render(ECS_VRL_TEMPLATE)?)
    }

    /// Compiles VRL source with Vector's standard library functions.
    pub fn from_source(source: &str) -> Result<Self, EcsError> {
        let functions = vrl::stdlib::all();
        let compiled = vrl::compiler::compile(source, &functions).map_err(|diagnostics| {
            EcsError::Compile {
                diagnostics: Formatter::new(source, diagnostics).to_string(),
            }
        })?;
        Ok(Self {
            program: compiled.program,
            state: RuntimeState::default(),
            timezone: TimeZone::default(),
        })
    }

    /// Maps one EVE line to its ECS document as a VRL value (what Vector hands its sinks).
    pub fn map_value(&mut self, line: &str) -> Result<Value, EcsError> {
        let mut event = BTreeMap::new();
        event.insert("message".into(), Value::Bytes(Bytes::copy_from_slice(line.as_bytes())));
        let mut target = TargetValue {
            value: Value::Object(event),
            metadata: Value::Object(BTreeMap::new()),
            secrets: Secrets::default(),
        };
        let result = {
            let mut ctx = Context::new(&mut target, &mut self.state, &self.timezone);
            self.program.resolve(&mut ctx)
        };
        self.state.clear();
        result.map_err(|e| EcsError::InvalidEvent {
            reason: e.to_string(),
        })?;
        Ok(target.value)
    }

    /// Maps one EVE line to its ECS document as JSON.
    pub fn map_line(&mut self, line: &str) -> Result<serde_json::Value, EcsError> {
        let value = self.map_value(line)?;
        serde_json::to_value(&value).map_err(|e| EcsError::Output {
            reason: e.to_string(),
        })
    }
}
