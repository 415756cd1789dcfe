//! The built-in tools.

mod command;
mod docs;
mod sql;
mod time;

pub use command::{CommandTool, MAX_STDOUT};
pub use docs::{ReadDoc, SearchDocs, MAX_READ_LINES};
pub use sql::SqlQuery;
pub use time::CurrentTime;
