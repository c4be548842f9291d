//! Placement: filter and score (node, device, backend) candidates; circuit breakers, adaptive timeouts. No I/O.
