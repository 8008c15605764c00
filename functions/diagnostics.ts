import { app } from '@azure/functions';
import { whenConfigured } from '../shared/platform/configGate';
import { diagnosticsResponse } from '../shared/diagnostics/diagnosticsResponse';
import { services } from '../shared/app/services';

app.http('diagnostics', {
  methods: ['GET'],
  authLevel: 'admin',
  route: 'diagnostics',
  handler: whenConfigured(() => diagnosticsResponse(services().config, services().credential)),
});
