//! The ECS side of the pipeline: the VRL program that maps Suricata EVE to the Elastic Common
//! Schema (`templates/ecs.vrl.tera`), a [`Mapper`] that runs it with the `vrl` crate exactly as
//! Vector's remap transform does, and the list of fields it can emit ([`fields`]).

mod mapper;
mod program;
mod stream;

/// The list of fields the program can emit: the portable core's, shared with `ids2-provision`.
pub use ids2_core::ecs as fields;
pub use mapper::Mapper;
pub use program::{ecs_program, ecs_program_for, ProgramVars, ID_FIELD};
pub use stream::{map_stream, StreamSummary};

/// Why the ECS program could not be built or an event could not be mapped.
#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    /// The program template did not render (a template bug, or a settings value it cannot take).
    #[error("cannot render the ECS program template templates/ecs.vrl.tera")]
    Render(#[from] crate::render::RenderError),
    /// The rendered program is not valid VRL; the message holds the compiler's diagnostics.
    #[error("the rendered ECS program does not compile (check templates/ecs.vrl.tera and the sensor name/id it embeds):\n{diagnostics}")]
    Compile {
        /// The VRL compiler's diagnostics, formatted with the offending source lines.
        diagnostics: String,
    },
    /// An enrichment table the program joins could not be loaded.
    #[error(transparent)]
    Enrichment(#[from] crate::enrich::EnrichError),
    /// The line is not JSON, not an object, or lacks what every EVE event has.
    #[error("not a valid EVE event: {reason}")]
    InvalidEvent {
        /// What VRL reported, e.g. `unable to parse json: expected value at line 1 column 1`.
        reason: String,
    },
    /// The mapped event could not be turned into JSON (e.g. a string that is not UTF-8).
    #[error("the mapped event is not representable as JSON: {reason}")]
    Output {
        /// The conversion error.
        reason: String,
    },
}
