"""The Kubernetes Python client against `podrun serve` (issue 22, acceptance 5).

Run by tests/api_kubectl.rs with the kubeconfig the server wrote: lists the pods (whole and
a page at a time), evicts the spare pod, watches the pods while the test's pod is deleted
through the API, and prints what it saw, one line each.
"""
import sys

from kubernetes import client, config, watch

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
pods = v1.list_namespaced_pod("default")
for p in pods.items:
    statuses = p.status.container_statuses or []
    print("listed", p.metadata.name, p.status.phase, p.status.pod_ip,
          ",".join(f"{c.name}={c.container_id}" for c in statuses))
first = v1.list_namespaced_pod("default", limit=1)
print("page1", first.items[0].metadata.name, "remaining", first.metadata.remaining_item_count)
rest = v1.list_namespaced_pod("default", limit=1, _continue=first.metadata._continue)
print("page2", rest.items[0].metadata.name, "more", rest.metadata._continue is not None)
spare = sys.argv[3]
v1.create_namespaced_pod_eviction(spare, "default", client.V1Eviction(
    metadata=client.V1ObjectMeta(name=spare, namespace="default"),
    delete_options=client.V1DeleteOptions(grace_period_seconds=1)))
print("evicted", spare, [p.metadata.name for p in v1.list_namespaced_pod("default").items])
victim = sys.argv[2]
w = watch.Watch()
deleted = False
for event in w.stream(v1.list_namespaced_pod, "default", timeout_seconds=20):
    obj = event["object"]
    print("event", event["type"], obj.metadata.name, flush=True)
    if not deleted and obj.metadata.name == victim:
        v1.delete_namespaced_pod(victim, "default", grace_period_seconds=1)
        print("deleted", victim, flush=True)
        deleted = True
    if event["type"] == "DELETED" and obj.metadata.name == victim:
        w.stop()
print("nodes", ",".join(n.metadata.name for n in v1.list_node().items))
