"""
The registry's services, as the web layer sees them.

A registry holds repositories; each repository has blobs, manifests, tags
and a referrers index.  Every I/O method returns a Deferred; failures are
L{registryd.errors.RegistryError}s carrying the OCI code a client should see.
Digests are L{registryd.reference.Digest}s; manifests are
L{registryd.manifest.Manifest}s.
"""

from dataclasses import dataclass

from zope.interface import Attribute, Interface


@dataclass(frozen=True)
class BlobInfo:
    """What the registry knows of a stored blob."""

    digest: str
    size: int


class IBlobReader(Interface):
    """A stream of a blob's bytes."""

    def read(size):
        """@return: Deferred firing with up to C{size} bytes; C{b""} at the end."""

    def close():
        """Release the reader.  Safe to call more than once."""

    def fileno():
        """A local file descriptor of the blob for C{sendfile}, or None."""


class IBlobUpload(Interface):
    """
    One upload session: bytes appended in order, then committed under the
    digest the client names.  Its state lives in storage, so any process
    sharing the storage may resume it.
    """

    id = Attribute("The session's id (a UUID string), used in its URL.")
    name = Attribute("The repository the blob is uploaded to.")
    size = Attribute("Bytes received so far.")
    startedAt = Attribute("When the session was created (seconds since the epoch).")

    def write(data):
        """
        Append C{data}.  Writes are applied in call order.

        @return: Deferred firing when the bytes are in storage.
        """

    def close():
        """
        Make what was written durable and release the session in this
        process; it can be resumed later.

        @return: Deferred firing with None.
        """

    def commit(digest):
        """
        Verify the content against C{digest}, store it as a blob, link it into
        the repository and end the session.  On any failure the session is
        cancelled and nothing is stored or linked.

        @return: Deferred firing with the L{BlobInfo}.
        @raise DigestInvalid: The content does not match C{digest}.
        """

    def cancel():
        """End the session and delete what it received.  @return: Deferred."""


class IBlobStore(Interface):
    """The blobs of one repository: a view of the global blob store by links."""

    def stat(digest):
        """
        @return: Deferred firing with the L{BlobInfo} of a blob linked here.
        @raise BlobUnknown: It is not linked into this repository.
        """

    def open(digest, offset=0):
        """
        @return: Deferred firing with an L{IBlobReader} from C{offset}.
        @raise BlobUnknown: It is not linked into this repository.
        """

    def delete(digest):
        """
        Unlink the blob from this repository.

        @raise BlobUnknown: It is not linked here.
        @raise Unsupported: Deletes are disabled.
        """

    def link(digest):
        """
        Link a blob the registry already stores into this repository.

        @return: Deferred firing with the L{BlobInfo}.
        @raise BlobUnknown: The registry does not store it.
        """

    def mount(digest, source=None):
        """
        Link a blob into this repository from repository C{source}, or with
        C{source} None from wherever the registry stores it.

        @return: Deferred firing with the L{BlobInfo}.
        @raise BlobUnknown: C{source} (or the registry) does not have it.
        """

    def createUpload():
        """@return: Deferred firing with a new L{IBlobUpload}."""

    def resumeUpload(uploadID):
        """
        @return: Deferred firing with the L{IBlobUpload} of that id.
        @raise BlobUploadUnknown: No such session, or it has ended.
        """


class IManifestService(Interface):
    """The manifests of one repository, by digest."""

    def get(digest):
        """
        @return: Deferred firing with the L{registryd.manifest.Manifest}.
        @raise ManifestUnknown: It is not in this repository.
        """

    def exists(digest):
        """@return: Deferred firing with a bool."""

    def put(manifest, tag=None):
        """
        Verify that everything C{manifest} references is in the repository,
        then store it, index it under its subject and point C{tag} at it,
        durably when the Deferred fires.

        @return: Deferred firing with its digest.
        @raise ManifestBlobUnknown: A referenced blob or manifest is missing
            (detail: its digest), or a foreign layer URL is not allowed.
        """

    def delete(digest):
        """
        Delete the manifest from this repository (its tags are the caller's).

        @raise ManifestUnknown: It is not in this repository.
        @raise Unsupported: Deletes are disabled.
        """


class ITagService(Interface):
    """The tags of one repository."""

    def get(tag):
        """
        @return: Deferred firing with the digest the tag points to.
        @raise ManifestUnknown: No such tag.
        """

    def tag(tag, digest):
        """Point C{tag} at C{digest}, atomically.  @return: Deferred."""

    def untag(tag):
        """
        Remove a tag (not its manifest).

        @raise ManifestUnknown: No such tag.
        @raise Unsupported: Deletes are disabled.
        """

    def list():
        """
        @return: Deferred firing with every tag, in the spec's lexical order
            (L{registryd.reference.lexicalKey}).
        @raise NameUnknown: The repository does not exist.
        """

    def lookup(digest):
        """@return: Deferred firing with the sorted tags pointing to C{digest}."""


class IReferrersIndex(Interface):
    """OCI 1.1 referrers of one repository: manifests naming a subject."""

    def referrers(subject, artifactType=None):
        """
        @return: Deferred firing with the L{registryd.manifest.Descriptor}s of
            the manifests whose subject is C{subject}, optionally only those
            of C{artifactType}, sorted by digest.
        """

    def add(subject, digest):
        """Record manifest C{digest} as a referrer of C{subject}."""

    def remove(subject, digest):
        """Forget that manifest C{digest} refers to C{subject}."""


class IRepository(Interface):
    """One repository's services."""

    name = Attribute("The repository name, e.g. 'library/ubuntu'.")
    blobs = Attribute("Its L{IBlobStore}.")
    manifests = Attribute("Its L{IManifestService}.")
    tags = Attribute("Its L{ITagService}.")
    referrers = Attribute("Its L{IReferrersIndex}.")


class IRegistry(Interface):
    """The namespace of repositories."""

    def repository(name):
        """The L{IRepository} named C{name} (a validated name); no I/O."""

    def catalog(n=None, last=None):
        """
        @return: Deferred firing with repository names in lexical order,
            those after C{last} only, at most C{n} of them.
        """
