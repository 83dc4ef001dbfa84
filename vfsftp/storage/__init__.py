"""Where the bytes live: the virtual tree of mounts and each session's view
of it, the backends (local folders, memory, S3), quotas, and the worker
threads that keep blocking calls off the event loop.

- ``tree``: ``VirtualTree``, PyFilesystem2's MountFS idea with its defects
  fixed, and the user views cut from it;
- ``sessionfs``: ``SessionFS``, one session's rights and async facade over
  its tree (atomic uploads, streamed listings);
- ``local``, ``memory``, ``s3``: the backends; ``nowait``: reads of cached
  local files that cannot block; ``threads``: the worker-thread pools;
- ``mounts``: opening the filesystems mounts.yaml names, per-user trees;
- ``quota``: storage quotas; ``errors``: the map from filesystem errors to
  replies.

Imports protocol, config and ops only; never a session or the service.
"""
