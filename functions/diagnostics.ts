import { app } from '@azure/functions';
import { diagnosticsResponse } from '../shared/diagnostics/diagnosticsResponse';

app.http('diagnostics', {
  methods: ['GET'],
  authLevel: 'admin',
  route: 'diagnostics',
  handler: () => diagnosticsResponse(),
});
