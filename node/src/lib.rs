//! Node.js bindings of ciphervec: the native addon of the npm package `ciphervec`, wrapped by
//! a thin JavaScript layer (`index.js`: error classes, `generateKey`, the ESM entry; and
//! `langchain.js`, the LangChain.js store).
//!
//! Every call that touches an index returns a Promise: its arguments are converted on the
//! JavaScript thread, its work runs as a napi async task on the libuv pool (panics caught),
//! and its result is converted back on the JavaScript thread (`tasks`). Errors are
//! JavaScript `Error`s whose `code` names the failure (`errors`), which `index.js` turns into
//! the `CiphervecError` subclass of that code. TypeScript declarations are generated from
//! this source by `napi build`.
//!
//! Node-API addons are context-aware: each worker thread gets its own classes, while the
//! databases behind them are shared by the whole process (`client::shared`), so that an
//! index open in one thread is the same index, under the same writer lock, in every other.

// `tasks` first: napi's TypeScript generator learns what each task resolves to from its
// `impl Task` before it meets the methods returning it.
mod tasks;

mod client;
mod convert;
mod errors;
mod index;
mod inputs;
mod results;
