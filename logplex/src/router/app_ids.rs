//! `AppIds`: app names to their immutable ids for a router-wide consumer (the history file,
//! the spool), which gets lines by name and keeps files by id.

use std::collections::HashMap;

use crate::line::AppName;

use super::Router;

/// App names to ids, looked up again whenever the registry changes (an app deleted and made
/// again has a new id).
#[derive(Debug)]
pub struct AppIds {
    router: Router,
    generation: u64,
    ids: HashMap<AppName, Option<String>>,
}

impl AppIds {
    pub fn new(router: Router) -> AppIds {
        AppIds {
            generation: router.generation(),
            router,
            ids: HashMap::new(),
        }
    }

    /// The app's id, `None` when no app has that name now.
    pub fn id(&mut self, name: &AppName) -> Option<String> {
        let generation = self.router.generation();
        if generation != self.generation {
            self.ids.clear();
            self.generation = generation;
        }
        let router = &self.router;
        self.ids
            .entry(name.clone())
            .or_insert_with(|| router.app(name.as_str()).map(|a| a.id))
            .clone()
    }
}
