//! Helpers for stage plugins that read what models write and work on a code
//! workspace, shared by the AI-coding and LSL plugins. They are not part of
//! the contract with the host (that is `plugin-sdk`); a plugin that needs
//! none of this depends on `plugin-sdk` alone.

pub mod files;
pub mod project;
pub mod text;
pub mod verdict;
