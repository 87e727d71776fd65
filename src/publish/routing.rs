//! Topic routing: the first configured route matching an event's canonical type and provider,
//! else the default topic.

use crate::config::RouteConfig;
use crate::vocabulary::EventType;
use crate::vocabulary::ProviderKind;

#[derive(Debug, Clone)]
pub struct Routing {
    routes: Vec<RouteConfig>,
    default_topic: String,
}

impl Routing {
    pub fn new(routes: &[RouteConfig], default_topic: &str) -> Self {
        Self {
            routes: routes.to_vec(),
            default_topic: default_topic.to_owned(),
        }
    }

    pub fn default_topic(&self) -> &str {
        &self.default_topic
    }

    pub fn topic_for(&self, event_type: EventType, provider: ProviderKind) -> &str {
        self.route_for(event_type, provider)
            .map_or(self.default_topic.as_str(), |route| route.topic.as_str())
    }

    /// The protection policy of the route an event takes, if that route names one.
    pub fn protect_for(&self, event_type: EventType, provider: ProviderKind) -> Option<&str> {
        self.route_for(event_type, provider)
            .and_then(|route| route.protect.as_deref())
    }

    fn route_for(&self, event_type: EventType, provider: ProviderKind) -> Option<&RouteConfig> {
        self.routes.iter().find(|route| {
            let type_matches = route
                .type_prefix
                .as_deref()
                .is_none_or(|prefix| event_type.as_str().starts_with(prefix));
            let provider_matches = route.provider.is_none_or(|wanted| wanted == provider);
            type_matches && provider_matches
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(
        type_prefix: Option<&str>,
        provider: Option<ProviderKind>,
        topic: &str,
    ) -> RouteConfig {
        RouteConfig {
            type_prefix: type_prefix.map(str::to_owned),
            provider,
            topic: topic.to_owned(),
            protect: None,
        }
    }

    #[test]
    fn first_matching_route_wins_and_default_catches_the_rest() {
        let routing = Routing::new(
            &[
                route(
                    Some("io.finhook.payment."),
                    Some(ProviderKind::new("bridge")),
                    "payments",
                ),
                route(Some("io.finhook.connection."), None, "connections"),
                route(None, Some(ProviderKind::new("linxo")), "linxo-other"),
            ],
            "events",
        );
        assert_eq!(
            routing.topic_for(EventType::PaymentLinkUpdated, ProviderKind::new("bridge")),
            "payments"
        );
        assert_eq!(
            routing.topic_for(EventType::ConnectionSyncFailed, ProviderKind::new("linxo")),
            "connections"
        );
        assert_eq!(
            routing.topic_for(EventType::Unmapped, ProviderKind::new("linxo")),
            "linxo-other"
        );
        assert_eq!(
            routing.topic_for(EventType::AccountCreated, ProviderKind::new("bridge")),
            "events"
        );
    }
}
