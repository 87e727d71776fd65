//! A polled queue page on its way to Kafka: read by its provider's queue reader into items
//! (envelopes or dead letters, through the same [`ingest::item`] as webhooks), grouped into
//! per-key chains that keep one connection's order.

use std::collections::HashMap;

use http::HeaderMap;

use crate::envelope::{self, Origin};
use crate::ingest::{self, Item};
use crate::providers;

/// Every event of `page`, fetched from the queue of `origin.user_id` at `origin.provider`, as an
/// item, passed through `protect` (the personal-data policy); an event without an id of its own
/// gets one of this poll's ([`envelope::per_delivery_id`]). A page that cannot be read at all
/// is one dead letter holding all of it. Every dead letter made of the page, here or when Kafka
/// refuses an event, names the user through its origin: `finhook redrive` reads it again as
/// that user's.
pub(crate) fn items<'p>(
    origin: &Origin<'p>,
    page: &'p [u8],
    protect: impl Fn(Item<'p>) -> Item<'p>,
) -> Option<Vec<Item<'p>>> {
    let no_headers = HeaderMap::new();
    let items = match read(origin, page)? {
        Ok(events) => events
            .into_iter()
            .enumerate()
            .map(|(position, (raw, mut facts))| {
                if let Ok(facts) = &mut facts {
                    facts.provider_event_id.get_or_insert_with(|| {
                        envelope::per_delivery_id(origin, Some(position), raw)
                    });
                }
                protect(ingest::item(origin, facts, raw, &no_headers))
            })
            .collect(),
        Err(error) => vec![ingest::item(origin, Err(error), page, &no_headers)],
    };
    Some(items)
}

/// The page read by its provider's queue reader; `None` when the provider has no queues (a
/// dead letter that names one, read again by `finhook redrive`).
fn read<'p>(origin: &Origin<'_>, page: &'p [u8]) -> Option<providers::QueuePage<'p>> {
    providers::entry(origin.provider.as_str())?
        .default_settings()
        .read_queue_page(page, origin.user_id.unwrap_or_default())
}

/// Items grouped by ordering key, in page order within each key: chains can be published in
/// parallel, the items of one chain one after the other.
pub(crate) fn chains<'i, 'p>(items: &'i [Item<'p>]) -> Vec<Vec<&'i Item<'p>>> {
    let mut chains: Vec<Vec<&Item<'p>>> = Vec::new();
    let mut chain_of_key: HashMap<&str, usize> = HashMap::new();
    for item in items {
        let index = *chain_of_key.entry(item.ordering_key()).or_insert_with(|| {
            chains.push(Vec::new());
            chains.len() - 1
        });
        chains[index].push(item);
    }
    chains
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::providers::linxo::Linxo;
    use crate::providers::Provider;
    use crate::vocabulary::Ingress;

    fn of_user(user: &'static str) -> Origin<'static> {
        Origin {
            user_id: Some(user),
            ..origin()
        }
    }

    fn origin() -> Origin<'static> {
        Origin::new(
            Linxo::KIND,
            "oxlin",
            Ingress::Queue,
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn a_page_keeps_each_connections_order_and_dead_letters_what_it_cannot_read() {
        let page = br#"[{"id":"1","name":"SYNC_STARTED","resource":{"id":"c1","channels":[]}},
            {"id":"2","name":"SYNC_STARTED","resource":{"id":"c2","channels":[]}},
            {"id":"3","name":"SYNC_ALL_SUCCESS","resource":{"id":"c1","channels":[]}},
            {"id":"4"}]"#;
        let items = items(&of_user("u1"), page, |item| item).unwrap();
        assert_eq!(items.len(), 4);
        assert!(matches!(items[3], Item::DeadLetter(_)), "no event code");
        // Every item knows whose queue it came from, so does a letter made of it later (an
        // event Kafka refuses for good is diverted to the dead-letter topic).
        for item in &items {
            let origin = match item {
                Item::Event { origin, .. } => origin,
                Item::DeadLetter(letter) => &letter.origin,
            };
            assert_eq!(origin.user_id, Some("u1"));
        }
        let chains = chains(&items);
        let ids: Vec<Vec<&str>> = chains
            .iter()
            .map(|chain| chain.iter().map(|item| item.id()).collect())
            .collect();
        assert_eq!(ids.len(), 3);
        assert_eq!(ids[0], ["1", "3"], "c1's events stay in order");
        assert_eq!(ids[1], ["2"]);
        // A page without events has no item (the poller counts it as an empty poll); an
        // unreadable page is one dead letter.
        for empty in [&b"[]"[..], b" {\"events\": []} "] {
            assert!(super::items(&of_user("u1"), empty, |item| item)
                .unwrap()
                .is_empty());
        }
        let unreadable = super::items(&of_user("u1"), b"not json", |item| item).unwrap();
        assert!(matches!(unreadable[..], [Item::DeadLetter(_)]));
    }

    #[test]
    fn events_without_an_id_get_one_per_poll_user_and_position() {
        let page = br#"[{"name":"SYNC_STARTED","resource":{"id":"c1","channels":[]}},
            {"name":"SYNC_STARTED","resource":{"id":"c1","channels":[]}},
            {"id":"q-1","name":"SYNC_STARTED","resource":{"id":"c1","channels":[]}}]"#;
        // The same page's bytes, twice: the first two events are equal to each other too.
        let ids = |origin: &Origin<'static>| -> Vec<String> {
            items(origin, page, |item| item)
                .unwrap()
                .iter()
                .map(|item| item.id().to_owned())
                .collect()
        };
        let first = ids(&of_user("u1"));
        assert_eq!(first[2], "q-1", "the provider's own id is kept");
        assert_ne!(first[0], first[1], "equal events of one page");
        let later_poll = Origin {
            received_at: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(10),
            ..of_user("u1")
        };
        let other_user = ids(&of_user("u2"));
        let again = ids(&later_poll);
        for (position, id) in first[..2].iter().enumerate() {
            assert_ne!(*id, other_user[position], "another user's queue");
            assert_ne!(*id, again[position], "a later poll");
        }
        assert_eq!(first, ids(&of_user("u1")), "the same page, user and moment");
    }

    #[test]
    fn a_dead_letter_made_by_protection_still_names_its_user() {
        // A policy that cannot protect an event turns it into a dead letter: redrive needs its
        // user as much as any other queue dead letter's.
        let page = br#"[{"id":"1","name":"SYNC_STARTED","resource":{"id":"c1","channels":[]}}]"#;
        let refuse = |item: Item<'static>| match item {
            Item::Event { origin, raw, .. } => Item::DeadLetter(crate::publish::DeadLetter::new(
                origin,
                "invalid_json",
                "too deep to protect".to_owned(),
                raw,
                &HeaderMap::new(),
            )),
            other => other,
        };
        let items = items(&of_user("u7"), page, refuse).unwrap();
        match &items[..] {
            [Item::DeadLetter(letter)] => assert_eq!(letter.origin.user_id, Some("u7")),
            _ => panic!("one dead letter"),
        }
    }
}
