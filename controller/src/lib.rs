//! switchyard-controller
