//! `grant`, `revoke` and `users`: managing who may open the index (see `index::access`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::*;
use crate::crypto::key::IndexKey;
use crate::engine::access::{self, Plan};
use crate::engine::binding::params;
use crate::format::access::RosterEntry;
use crate::model::access::Access;

impl EncryptedIndex {
    /// Grants `user`, who holds `user_key` (32 random bytes, as [`IndexKey::generate`]
    /// makes; never stored), `access` to this index; it then opens it with
    /// [`Database::open_index_as`](crate::Database::open_index_as). Granting a user again
    /// replaces its grant (scope and key).
    ///
    /// The first grant turns access control on: the data key is rotated (one rewrite, as
    /// [`rotate_data_key`](Self::rotate_data_key)) and from then on every commit is signed
    /// with a signing key that only write-scoped grants and the index key hold. Later grants
    /// are one manifest commit. The user name is stored only sealed (in the roster only
    /// admins open); the grant is found by a token keyed by the user key.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] unless the handle holds the index key or an
    /// [`Access::Admin`] grant; [`Error::InvalidArgument`] for an empty or overlong name,
    /// or past 4,096 users; [`Error::Io`] if the write fails (the grants stay as they were).
    pub fn grant(&self, user: &str, user_key: &IndexKey, access: Access) -> Result<()> {
        access::check_user(user)?;
        self.require(Need::Admin)?;
        crate::engine::parallel::install(|| {
            let _writer = self.writer()?;
            let state = self.read();
            let header = state.header();
            let uk = params(header).user_keys(user_key, user);
            let entry = RosterEntry {
                name: user.to_owned(),
                scope: access.byte(),
                token: uk.token,
                grant_key: *uk.grant_key,
            };
            let mut entries: Vec<RosterEntry> = access::roster(header, state.keys())?
                .into_iter()
                .filter(|e| e.name != user)
                .collect();
            entries.push(entry);
            if header.access.is_none() {
                // Access control starts under a data key no earlier manifest wraps, so no
                // state from before it can be extended by a holder of the data key alone.
                let plan = Plan::fresh(entries)?;
                let (header, keys) = persist::rotate_with_plan(header, state.keys(), plan)?;
                return self.rewrite_as_is(state, (Arc::new(keys), header));
            }
            let plan = Plan::current(header, state.keys())?.ok_or(Error::PermissionDenied)?;
            let plan = Plan { entries, ..plan };
            drop(state);
            self.commit_access(plan)
        })
    }

    /// Revokes `user`'s grant and rotates the data key (and the signing and roster keys) in
    /// one crash-safe commit, a rewrite of every record: the revoked user's key opens
    /// neither the index nor anything written from then on. What it could read before, it
    /// may have kept (`docs/THREAT_MODEL.md`).
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] as for [`grant`](Self::grant);
    /// [`Error::InvalidArgument`] if `user` holds no grant; [`Error::Io`] if the write fails
    /// (the index stays as it was, grants included).
    pub fn revoke(&self, user: &str) -> Result<()> {
        access::check_user(user)?;
        self.require(Need::Admin)?;
        crate::engine::parallel::install(|| {
            let _writer = self.writer()?;
            let state = self.read();
            let header = state.header();
            let entries = access::roster(header, state.keys())?;
            let before = entries.len();
            let entries: Vec<RosterEntry> =
                entries.into_iter().filter(|e| e.name != user).collect();
            if entries.len() == before {
                return Err(Error::invalid_argument("no grant for that user"));
            }
            let plan = Plan::fresh(entries)?;
            let (header, keys) = persist::rotate_with_plan(header, state.keys(), plan)?;
            self.rewrite_as_is(state, (Arc::new(keys), header))
        })
    }

    /// The users granted access, with their scopes, sorted by name (empty for an index
    /// without access control).
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] unless the handle holds the index key or an admin grant;
    /// [`Error::Corrupted`] if the roster does not authenticate.
    pub fn users(&self) -> Result<Vec<(String, Access)>> {
        self.require(Need::Admin)?;
        let state = self.read();
        let mut out = access::roster(state.header(), state.keys())?
            .into_iter()
            .map(|e| Ok((e.name, Access::from_byte(e.scope)?)))
            .collect::<Result<Vec<_>>>()?;
        out.sort();
        Ok(out)
    }

    /// The scope of this handle's grant: `None` when it was opened with the index key.
    pub fn access(&self) -> Option<Access> {
        access::scope(self.read().keys())
    }

    /// Commits new grants under the same data and signing keys: one manifest replacement
    /// (the caller holds the writer lock).
    fn commit_access(&self, plan: Plan) -> Result<()> {
        if self.inner.poisoned.load(Ordering::SeqCst) {
            return Err(Error::Poisoned);
        }
        let (mut header, body, keys) = {
            let state = self.read();
            (
                state.header().clone(),
                state.body().clone(),
                state.keys().clone(),
            )
        };
        let wrapper = keys.wrapper.clone().ok_or(Error::PermissionDenied)?;
        let dek = wrapper.unwrap(
            &header.wrapped_key,
            &access::wrap_binding(keys.format, header.access.is_some()),
        )?;
        let generation = keys.next_generation();
        let new_keys =
            crate::crypto::schedule::Keys::derive(params(&header), &dek, generation, keys.format)
                .with_wrapper(wrapper.clone());
        let new_keys = access::install(&mut header, new_keys, &dek, &wrapper, plan, &keys)?;
        let mut new_body = body;
        let epoch = self.inner.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        persist::commit_manifest_only(&mut new_body, epoch, &header);
        new_body.key_generation = new_body.key_generation.max(new_keys.next_generation());
        if let Err(e) = persist::write_manifest(&*self.inner.store, &header, &new_keys, &new_body) {
            // The rename may have happened: which grants are stored is unknown until the
            // index is reopened, and a later commit must not put the old ones back.
            self.inner.poisoned.store(true, Ordering::SeqCst);
            return Err(e);
        }
        self.inner
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .adopt_keys(Arc::new(new_keys), header, new_body);
        Ok(())
    }
}

#[cfg(feature = "internals")]
impl EncryptedIndex {
    /// See `internals::forge_upsert_as_reader`.
    pub(crate) fn forge_upsert(&self, items: Vec<crate::model::types::Item>) -> Result<()> {
        {
            let mut state = self
                .inner
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let forged = access::forged_keys(state.header(), state.keys())?;
            let (header, body) = (state.header().clone(), state.body().clone());
            state.adopt_keys(Arc::new(forged), header, body);
        }
        self.inner.read_only.store(false, Ordering::SeqCst);
        self.upsert(items)
    }
}
