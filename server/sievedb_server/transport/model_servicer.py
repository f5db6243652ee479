"""The model-registry and alias RPCs of `sievedb.v1.SieveDB` (a mixin of the servicer; thin)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sievedb_proto.v1 import sievedb_pb2 as pb

from sievedb_server.core.aliases import Alias, collection_exists
from sievedb_server.transport import codec
from sievedb_server.transport.model_codec import (
    decode_model_spec,
    decode_thresholds,
    encode_model_info,
    report_json,
)

if TYPE_CHECKING:
    import grpc

    from sievedb_server.core.engine import Engine

__all__ = ["ModelServicerMixin"]


class ModelServicerMixin:
    engine: Engine

    def SetProbeSet(
        self, request: pb.SetProbeSetRequest, context: grpc.ServicerContext
    ) -> pb.SetProbeSetResponse:
        n = self.engine.models.set_probe_set(
            request.collection, list(request.item_ids), list(request.labels), request.replace
        )
        return pb.SetProbeSetResponse(items=n)

    def RegisterModel(
        self, request: pb.RegisterModelRequest, context: grpc.ServicerContext
    ) -> pb.RegisterModelResponse:
        probe = (
            codec.decode_vectors(request.probe_vectors, what="probe vectors")
            if request.HasField("probe_vectors") and request.probe_vectors.count
            else None
        )
        rec = self.engine.models.register(
            request.collection, decode_model_spec(request.model), probe
        )
        _, default = self.engine.models.list_models(request.collection)
        return pb.RegisterModelResponse(model=encode_model_info(rec, default))

    def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.ServicerContext
    ) -> pb.ListModelsResponse:
        recs, default = self.engine.models.list_models(request.collection)
        return pb.ListModelsResponse(models=[encode_model_info(r, default) for r in recs])

    def CheckModel(
        self, request: pb.CheckModelRequest, context: grpc.ServicerContext
    ) -> pb.CheckModelResponse:
        probe = (
            codec.decode_vectors(request.probe_vectors, what="probe vectors")
            if request.HasField("probe_vectors") and request.probe_vectors.count
            else None
        )
        report = self.engine.models.check(
            request.collection,
            request.model,
            probe,
            decode_thresholds(request.thresholds_json),
            seed=int(request.seed),
        )
        return pb.CheckModelResponse(
            compatible=report.compatible, reasons=report.reasons, report_json=report_json(report)
        )

    def PromoteModel(
        self, request: pb.PromoteModelRequest, context: grpc.ServicerContext
    ) -> pb.PromoteModelResponse:
        rec, report = self.engine.models.promote(
            request.collection,
            request.model,
            adapter=request.adapter,
            thresholds=decode_thresholds(request.thresholds_json),
            make_default=request.make_default,
            seed=int(request.seed),
        )
        _, default = self.engine.models.list_models(request.collection)
        return pb.PromoteModelResponse(
            model=encode_model_info(rec, default), report_json=report_json(report)
        )

    # --- aliases -------------------------------------------------------------------------

    @staticmethod
    def _alias(alias: Alias) -> pb.AliasInfo:
        return pb.AliasInfo(alias=alias.name, collection=alias.collection, previous=alias.previous)

    def SetAlias(
        self, request: pb.SetAliasRequest, context: grpc.ServicerContext
    ) -> pb.SetAliasResponse:
        alias = self.engine.aliases.set(
            request.alias, request.collection, collection_exists(self.engine)
        )
        return pb.SetAliasResponse(alias=self._alias(alias))

    def RollbackAlias(
        self, request: pb.RollbackAliasRequest, context: grpc.ServicerContext
    ) -> pb.SetAliasResponse:
        alias = self.engine.aliases.rollback(request.alias, collection_exists(self.engine))
        return pb.SetAliasResponse(alias=self._alias(alias))

    def DeleteAlias(
        self, request: pb.DeleteAliasRequest, context: grpc.ServicerContext
    ) -> pb.DeleteAliasResponse:
        return pb.DeleteAliasResponse(deleted=self.engine.aliases.delete(request.alias))

    def ListAliases(
        self, request: pb.ListAliasesRequest, context: grpc.ServicerContext
    ) -> pb.ListAliasesResponse:
        return pb.ListAliasesResponse(aliases=[self._alias(a) for a in self.engine.aliases.list()])
