//! switchyard-backend-openvino
