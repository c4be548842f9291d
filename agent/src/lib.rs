//! switchyard-agent
