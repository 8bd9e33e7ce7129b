//! The async tasks every index call returns: the engine work runs on the libuv pool (off the
//! JavaScript thread, panics caught), its result is converted on the JavaScript thread when
//! the Promise settles. One task type per kind of result, so that the generated TypeScript
//! says what each Promise holds.

use std::sync::Arc;

use ciphervec::{Database, EncryptedIndex};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::errors::{Failure, Outcome, catching};
use crate::index::Index;
use crate::results::{self, Hit, StoredItem, VerifyReport};

/// Engine work waiting for a pool thread.
pub struct Job<T> {
    work: Option<Box<dyn FnOnce() -> ciphervec::Result<T> + Send>>,
}

impl<T> Job<T> {
    fn new(work: impl FnOnce() -> ciphervec::Result<T> + Send + 'static) -> Job<T> {
        Job {
            work: Some(Box::new(work)),
        }
    }

    /// Runs the work once (napi calls `compute` once per task).
    fn run(&mut self) -> Outcome<T> {
        match self.work.take() {
            Some(work) => catching(work),
            None => Err(Failure::with_code("INTERNAL", "a task ran twice")),
        }
    }
}

/// Declares task types: `Name(engine result) -> [JavaScript value] = conversion;`. (The
/// JavaScript type is given as plain tokens so that napi's TypeScript generator reads it.)
macro_rules! tasks {
    ($( $(#[$doc:meta])* $name:ident($out:ty) -> [$($js:tt)*] = $finish:expr; )*) => {$(
        $(#[$doc])*
        pub struct $name(Job<$out>);

        impl $name {
            /// The task running `work`, for a method to return.
            pub(crate) fn spawn(
                work: impl FnOnce() -> ciphervec::Result<$out> + Send + 'static,
            ) -> AsyncTask<$name> {
                AsyncTask::new($name(Job::new(work)))
            }
        }

        #[napi]
        impl Task for $name {
            type Output = Outcome<$out>;
            type JsValue = $($js)*;

            fn compute(&mut self) -> Result<Self::Output> {
                Ok(self.0.run())
            }

            fn resolve(&mut self, env: Env, output: Self::Output) -> Result<$($js)*> {
                let finish: fn($out) -> $($js)* = $finish;
                output.map(finish).map_err(|f| f.into_js(&env))
            }
        }
    )*};
}

tasks! {
    /// Work with no result.
    Done(()) -> [()] = |()| ();
    /// A count (items deleted).
    Count(usize) -> [f64] = |n| n as f64;
    /// A yes or no (`refresh`: whether anything changed).
    Flag(bool) -> [bool] = |b| b;
    /// Names (indexes, ids).
    Names(Vec<String>) -> [Vec<String>] = |names| names;
    /// The hits of one query.
    Hits(Vec<ciphervec::Hit>) -> [Vec<Hit>] = results::hits;
    /// The hits of each query of a batch.
    HitLists(Vec<Vec<ciphervec::Hit>>) -> [Vec<Vec<Hit>>] =
        |lists| lists.into_iter().map(results::hits).collect();
    /// Stored records.
    Records(Vec<ciphervec::Record>) -> [Vec<StoredItem>] =
        |records| records.into_iter().map(StoredItem::from).collect();
    /// A verify report.
    Verified(ciphervec::VerifyReport) -> [VerifyReport] = VerifyReport::from;
    /// An opened or created index.
    Opened((EncryptedIndex, Arc<Database>)) -> [Index] = |(index, db)| Index::new(index, db);
}
