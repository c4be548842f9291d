//! Backend set: builds every compiled-in backend, probes backend x device pairs, calibrates
