//! The node sampler (placeholder until the sampler lands).
