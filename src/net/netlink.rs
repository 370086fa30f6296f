//! Netlink connection handling: a host handle on the calling thread, and a handle inside another
//! network namespace on a scoped helper thread.
//!
//! A netlink socket is bound to the network namespace of the thread that creates it, so the pod
//! handle is created on a `std::thread` that has `setns(CLONE_NEWNET)`'d into the pod. That
//! thread is always joined before we return (the caller forks later and must not carry threads),
//! and it never goes back: it simply ends. The runtime is a tokio current_thread runtime, which
//! starts no threads of its own.

use std::future::Future;
use std::os::fd::BorrowedFd;

use futures_util::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};

use super::{NetError, NlError};

/// Run `f` with a netlink handle in the calling thread's network namespace.
pub(crate) fn block_on_host<F, Fut, T>(f: F) -> Result<T, NetError>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = T>,
{
    block_on(false, f)
}

/// Run `f` with a netlink handle inside the network namespace `netns`, on a helper thread that is
/// joined before returning. Anything else that must happen inside the pod (sysctl writes under
/// `/proc/sys/net`) belongs in `f` as well.
pub(crate) fn block_on_in_netns<F, Fut, T>(netns: BorrowedFd<'_>, f: F) -> Result<T, NetError>
where
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T, NetError>>,
    T: Send,
{
    std::thread::scope(|s| {
        let helper = s.spawn(move || {
            // Only this thread changes namespace; it ends right after `f`.
            nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|source| NetError::EnterNetns { source })?;
            block_on(true, f)?
        });
        helper.join().map_err(|_| NetError::HelperPanicked)?
    })
}

fn block_on<F, Fut, T>(in_pod: bool, f: F) -> Result<T, NetError>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = T>,
{
    // A supervisor forked after this would inherit tokio's signal registry.
    crate::pod::exec_supervisors();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|source| NetError::Runtime { source })?;
    let handle = {
        // new_connection registers the socket with the runtime's IO driver.
        let _guard = rt.enter();
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|source| NetError::Connect { in_pod, source })?;
        // The connection future drives all requests; without it every request hangs.
        rt.spawn(conn);
        handle
    };
    Ok(rt.block_on(f(handle)))
}

/// The link called `name`, or `None` if there is none.
pub(crate) async fn link_by_name(
    handle: &Handle,
    name: &str,
) -> Result<Option<LinkMessage>, NlError> {
    first_link(handle.link().get().match_name(name.to_string())).await
}

/// [`link_by_name`], its failure named for callers: `NetError::GetLink`.
pub(crate) async fn find_link(
    handle: &Handle,
    name: &str,
) -> Result<Option<LinkMessage>, NetError> {
    link_by_name(handle, name)
        .await
        .map_err(|source| NetError::GetLink {
            name: name.to_string(),
            source,
        })
}

/// Delete link `index` (its name for the error); a link already gone (ENODEV) is fine.
pub(crate) async fn delete_link(handle: &Handle, index: u32, name: &str) -> Result<(), NetError> {
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(e) => {
            let source = NlError::from_rtnetlink(e);
            if source.is_errno(libc::ENODEV) {
                Ok(())
            } else {
                Err(NetError::DeleteLink {
                    name: name.to_string(),
                    source,
                })
            }
        }
    }
}

/// Delete the link called `name`; a missing link is fine.
pub(crate) async fn delete_link_named(handle: &Handle, name: &str) -> Result<(), NetError> {
    let found = link_by_name(handle, name)
        .await
        .map_err(|source| NetError::DeleteLink {
            name: name.to_string(),
            source,
        })?;
    match found {
        Some(link) => delete_link(handle, link.header.index, name).await,
        None => Ok(()),
    }
}

/// The link with index `index`, or `None`.
pub(crate) async fn link_by_index(
    handle: &Handle,
    index: u32,
) -> Result<Option<LinkMessage>, NlError> {
    first_link(handle.link().get().match_index(index)).await
}

/// The answer to a single-link RTM_GETLINK; ENODEV (no such link) is `None`.
async fn first_link(request: rtnetlink::LinkGetRequest) -> Result<Option<LinkMessage>, NlError> {
    match request.execute().try_next().await {
        Ok(msg) => Ok(msg),
        Err(e) => {
            let e = NlError::from_rtnetlink(e);
            if e.is_errno(libc::ENODEV) {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// All links of the namespace.
pub(crate) async fn all_links(handle: &Handle) -> Result<Vec<LinkMessage>, NlError> {
    handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(NlError::from_rtnetlink)
}

pub(crate) fn link_name(msg: &LinkMessage) -> Option<&str> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

pub(crate) fn link_alias(msg: &LinkMessage) -> Option<&str> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(n) => Some(n.as_str()),
        _ => None,
    })
}

pub(crate) fn link_controller(msg: &LinkMessage) -> Option<u32> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(i) => Some(*i),
        _ => None,
    })
}

/// `IFLA_LINK`: for a veth, the peer's ifindex (in the peer's namespace).
pub(crate) fn link_peer_index(msg: &LinkMessage) -> Option<u32> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Link(i) => Some(*i),
        _ => None,
    })
}

pub(crate) fn link_oper_state(msg: &LinkMessage) -> Option<State> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::OperState(s) => Some(*s),
        _ => None,
    })
}

pub(crate) fn link_admin_up(msg: &LinkMessage) -> bool {
    msg.header.flags.contains(LinkFlags::Up)
}

pub(crate) fn link_mac(msg: &LinkMessage) -> Option<String> {
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(bytes) => Some(
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        _ => None,
    })
}

/// The `kind` of a link from IFLA_LINKINFO ("bridge", "veth", ...).
pub(crate) fn link_kind(msg: &LinkMessage) -> Option<String> {
    use rtnetlink::packet_route::link::LinkInfo;
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k.to_string()),
            _ => None,
        }),
        _ => None,
    })
}

/// `ip`-style lower-case operational state ("up", "down", "lowerlayerdown", ...).
pub(crate) fn oper_state_name(state: Option<State>) -> String {
    match state {
        Some(s) => format!("{s:?}").to_lowercase(),
        None => "unknown".to_string(),
    }
}
