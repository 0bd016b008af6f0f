//! ECS alerts as NDJSON lines.
