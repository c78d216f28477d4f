//! The `attempt` interface (since 0.2.1): why this attempt is running. A
//! fact the scheduler knows (a retry, a resume after the host stopped, a
//! loop's pass), given to every stage; nothing to grant or refuse.

use host_runtime::bindings::older_line_names;
use host_runtime::bindings::orchestrator::stage::attempt::{
    self as wit, AttemptKind as WitKind, Host,
};
use host_runtime::{AttemptScope, Capability, Grant, HasGrant, grant_of};
use host_vocab::AttemptKind;
use wasmtime::component::{HasSelf, Linker};

pub struct AttemptCapability;

impl Capability for AttemptCapability {
    type Grant = AttemptGrant;
    const INTERFACES: &'static [&'static str] = &["attempt"];
    const GOVERNED_BY: &'static str = "always: facts about the attempt";

    fn link<T: HasGrant<AttemptGrant>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<AttemptGrant>>(linker, grant_of)?;
        // 0.2.1 and later patches of 0.2 have it too.
        for name in older_line_names("attempt") {
            linker
                .instance(&name)?
                .func_wrap_async("kind", |mut store, (): ()| {
                    Box::new(async move {
                        let s = grant_of(store.data_mut());
                        Ok((Host::kind(s).await?,))
                    })
                })?;
        }
        Ok(())
    }

    fn grant(&self, scope: &AttemptScope<'_>) -> AttemptGrant {
        AttemptGrant { kind: scope.kind }
    }

    fn deny() -> AttemptGrant {
        AttemptGrant {
            kind: AttemptKind::First,
        }
    }
}

pub struct AttemptGrant {
    kind: AttemptKind,
}

impl Grant for AttemptGrant {}

impl Host for AttemptGrant {
    async fn kind(&mut self) -> wasmtime::Result<WitKind> {
        Ok(match self.kind {
            AttemptKind::First => WitKind::First,
            AttemptKind::Retry => WitKind::Retry,
            AttemptKind::Resume => WitKind::Resume,
            AttemptKind::LoopPass => WitKind::LoopPass,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{live, pipeline, scope};

    #[tokio::test]
    async fn the_plugin_is_told_what_the_scheduler_knows() {
        let (p, _dir) = pipeline(
            "[pipeline]\nname = \"p\"\ntask = \"t\"\n\n[[stage]]\nid = \"a\"\nplugin = \"a.wasm\"\n",
        );
        let live = live();
        let resumed = AttemptScope {
            kind: AttemptKind::Resume,
            ..scope(&p, "a", &live)
        };
        let mut grant = AttemptCapability.grant(&resumed);
        assert_eq!(grant.kind().await.unwrap(), WitKind::Resume);
        let mut first = AttemptCapability.grant(&scope(&p, "a", &live));
        assert_eq!(first.kind().await.unwrap(), WitKind::First);
    }
}
