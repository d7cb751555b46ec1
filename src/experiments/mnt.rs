//! (to be written)

use crate::experiment::Experiment;
use crate::helper::HelperOp;

pub static EXPERIMENTS: &[Experiment] = &[];
pub static HELPER_OPS: &[(&str, HelperOp)] = &[];
