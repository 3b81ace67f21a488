//! Listeners on the runner's events: the console, JUnit XML and JSON reports.

pub mod console;
