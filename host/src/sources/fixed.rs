//! A source that needs no CI: the queue's name is its counts, `W+R`
//! (waiting, running). It exists for the tests that prove the seam: a
//! source is this file, one arm of each enum in `mod.rs`, and one section
//! of the configuration (`[fixed]`), and the tick, the reports and the
//! modes take it without a change.

use super::SourceError;
use crate::observation::Queue;

/// Counts read from the queue's name.
#[derive(Debug)]
pub struct Fixed;

impl Fixed {
    pub async fn queue(&self, name: &str) -> Result<Queue, SourceError> {
        let refused = || SourceError::Refused {
            source_name: "fixed",
            message: format!("{} is not W+R", crate::text::quoted(name)),
        };
        let (waiting, running) = name.split_once('+').ok_or_else(refused)?;
        Ok(Queue {
            waiting: waiting.parse().map_err(|_| refused())?,
            running: running.parse().map_err(|_| refused())?,
            blocked: None,
        })
    }
}

#[cfg(test)]
mod tests {
    //! The seam: a pool of this source runs from the configuration to a
    //! written decision through the code every source shares.
    use crate::config::Config;
    use crate::groups::{GroupId, GroupState, MemoryGroups};
    use crate::modes::{load_pools, SecretQueues};
    use crate::policy::PolicyLoader;
    use crate::sources::{Source, SourceKind, Sources};
    use crate::tick::{tick, TickOptions};

    #[tokio::test]
    async fn a_third_source_ticks_through_the_shared_path() {
        let config = Config::from_toml(
            "[fixed]\n\
             [defaults]\nregion = \"eu-west-1\"\nmax = 10\n\
             [[pool]]\nname = \"f\"\nsource = \"fixed\"\nqueue = \"3+1\"\ngroup = \"g\"\npolicy = \"queue\"\n",
            "seam.toml",
            std::path::Path::new(""),
        )
        .unwrap();
        let mut policies = PolicyLoader::lazy(|| panic!("built-in rules need no engine"));
        let pools = load_pools(&config, &mut policies, &SecretQueues::new()).unwrap();
        let sources = config
            .sources
            .iter()
            .map(|s| {
                let token = crate::secret::Secret::new("unused");
                Source::build(s.kind, &s.base_url, token, s.http.clone()).unwrap()
            })
            .collect();
        let groups = MemoryGroups::new();
        let group = GroupId {
            region: "eu-west-1".into(),
            name: "g".into(),
        };
        groups.insert(
            group.clone(),
            GroupState {
                max_size: 10,
                new_instances_protected: true,
                ..GroupState::default()
            },
        );
        let reports = tick(
            &pools,
            &Sources::new(sources),
            &groups,
            jiff::Timestamp::now(),
            TickOptions::default(),
        )
        .await;
        let report = &reports[0];
        assert_eq!(
            (report.source, report.queue.as_str()),
            (SourceKind::Fixed, "3+1")
        );
        assert_eq!(report.resource_class, None, "only CircleCI pools have one");
        let jobs = report.jobs.as_ref().expect("the queue was read");
        assert_eq!((jobs.waiting, jobs.running), (3, 1));
        // The queue rule wants a runner for every job, waiting or running.
        assert_eq!(report.desired, Some(4), "{report:?}");
        assert_eq!(groups.get(&group).unwrap().desired, 4, "written");
    }
}
