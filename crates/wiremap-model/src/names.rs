//! The fixed vocabularies behind the model's `&'static str` fields, so that a reader of stored
//! entries (the embedded store, ClickHouse, the agent uplink) maps a name it reads back to
//! the one static string instead of allocating (and leaking) one per distinct name.

/// Every application field name a dissector emits (`AppInfo` keys). A dissector that adds a
/// field adds it here; debug builds check every field added through [`crate::AppInfo`].
pub const APP_FIELDS: &[&str] = &[
    "amqp_exchange",
    "amqp_method",
    "amqp_queue",
    "amqp_reply",
    "amqp_request",
    "amqp_request_length",
    "amqp_response",
    "amqp_response_length",
    "amqp_routing_key",
    "amqp_summary",
    "amqp_total_size",
    "kafka_api_key",
    "kafka_api_key_name",
    "kafka_api_version",
    "kafka_client_id",
    "kafka_request",
    "kafka_request_size",
    "kafka_request_summary",
    "kafka_response",
    "kafka_response_size",
    "kafka_size",
    "mongodb_collection",
    "mongodb_command",
    "mongodb_database",
    "mongodb_error_code",
    "mongodb_error_code_name",
    "mongodb_error_message",
    "mongodb_opcode",
    "mongodb_request_size",
    "mongodb_response_size",
    "mongodb_success",
    "mongodb_total_size",
    "mysql_command",
    "mysql_database",
    "mysql_error_code",
    "mysql_error_message",
    "mysql_query",
    "mysql_request_size",
    "mysql_response_size",
    "mysql_statement_id",
    "mysql_success",
    "mysql_total_size",
    "postgresql_command",
    "postgresql_command_tag",
    "postgresql_database",
    "postgresql_error_code",
    "postgresql_error_message",
    "postgresql_query",
    "postgresql_request_size",
    "postgresql_response_size",
    "postgresql_success",
    "postgresql_total_size",
    "postgresql_user",
    "redis_command",
    "redis_error",
    "redis_key",
    "redis_request_size",
    "redis_response_size",
    "redis_total_size",
    "redis_type",
    "request_size",
    "response_size",
    "total_size",
    "ws_compressed",
    "ws_opcode",
    "ws_request",
    "ws_request_payload_data",
    "ws_request_payload_length",
    "ws_response",
    "ws_response_payload_length",
];

/// Connection states (`ConnInfo::state`).
pub const CONN_STATES: &[&str] = &["open", "closed"];
/// Connection error kinds (`ConnInfo::error_type`).
pub const CONN_ERRORS: &[&str] = &["reset", "refused", "unanswered", "gap"];
/// Resolution statuses (`Identity::resolution_status`).
pub const RESOLUTION_STATUSES: &[&str] = &["unresolved", "stale"];

/// The static name equal to `s` in `names`, if any.
pub fn known_name(names: &'static [&'static str], s: &str) -> Option<&'static str> {
    names.iter().find(|n| **n == s).copied()
}

/// The static application field name equal to `s`: `None` for a name no dissector emits
/// (written by a later version, or damage), which a reader drops.
pub fn app_field(s: &str) -> Option<&'static str> {
    APP_FIELDS
        .binary_search(&s)
        .ok()
        .and_then(|i| APP_FIELDS.get(i))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_list_is_sorted_and_unique() {
        assert!(APP_FIELDS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(app_field("redis_command"), Some("redis_command"));
        assert_eq!(app_field("nope"), None);
        assert_eq!(known_name(CONN_ERRORS, "gap"), Some("gap"));
    }
}
