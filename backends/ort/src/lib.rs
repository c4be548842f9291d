//! switchyard-backend-ort
