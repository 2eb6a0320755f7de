//! Cash for work: a plan's work projects and the timesheets of the days worked, which four
//! eyes approve before payroll pays them. `store` keeps them; `http` serves them.

pub mod http;
pub mod store;
