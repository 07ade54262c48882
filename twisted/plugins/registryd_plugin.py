from twisted.application.service import ServiceMaker

registryd = ServiceMaker(
    "registryd",
    "registryd.tap",
    "An OCI Distribution 1.1 / Docker Registry V2 server.",
    "registryd",
)
